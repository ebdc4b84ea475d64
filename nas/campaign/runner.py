"""Runner profiles (``runners/*.yaml``): where and how campaign trials run.

A profile says which Ray to use (a local one or a cluster address), the resources of one trial,
the concurrency, failure retries, actor reuse, the storage path and the latency policy. Every key
is optional; errors name the file and the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nas import vocab
from nas.errors import SpaceError, did_you_mean

__all__ = ["Runner", "load_runner", "LATENCY_POLICIES", "SCHEDULERS"]

LATENCY_POLICIES = ("auto", "inline", "serial", "off")
SCHEDULERS = (None, *vocab.SCHEDULERS)
_SAMPLERS = (None, *vocab.SAMPLERS)


@dataclass(frozen=True)
class Runner:
    """An execution profile. ``address`` None starts a local Ray; ``"auto"`` or ``ray://...``
    connects to a running cluster (``RAY_ADDRESS`` overrides the profile)."""

    name: str = "local"
    address: str | None = None
    num_cpus: int | None = None  # local Ray only; default: every core
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None  # default: as many as the resources allow
    max_failures: int = 1  # retries of a trial whose worker died (FailureConfig)
    reuse_actors: bool = True
    storage_path: str | None = None  # default: <campaign folder>/ray
    latency: str = "auto"  # auto | inline | serial | off
    sampler: str | None = None  # overrides the space's sampler in `nas search`
    scheduler: str | None = None  # asha | hyperband on val_acc (search)
    device: str = "cpu"
    object_store_mb: int = 256
    connect_timeout_s: float = 30.0

    @property
    def effective_address(self) -> str | None:
        return os.environ.get("RAY_ADDRESS") or self.address

    def concurrency(self) -> int:
        if self.max_concurrent:
            return self.max_concurrent
        cpus = self.num_cpus or os.cpu_count() or 1
        return max(1, int(cpus // max(self.cpus_per_trial, 1e-9)))

    def latency_inline(self) -> bool:
        """Time inside the trial only when the trial owns its device (see README)."""
        if self.latency in ("inline", "serial", "off"):
            return self.latency == "inline"
        return self.concurrency() == 1 or self.gpus_per_trial >= 1


_FIELDS = {
    "name": (str,),
    "address": (str, type(None)),
    "num_cpus": (int, type(None)),
    "cpus_per_trial": (int, float),
    "gpus_per_trial": (int, float),
    "max_concurrent": (int, type(None)),
    "max_failures": (int,),
    "reuse_actors": (bool,),
    "storage_path": (str, type(None)),
    "latency": (str,),
    "sampler": (str, type(None)),
    "scheduler": (str, type(None)),
    "device": (str,),
    "object_store_mb": (int,),
    "connect_timeout_s": (int, float),
}


def runner_from_dict(data: Any, *, source: str) -> Runner:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpaceError(
            source, "<root>", f"expected a mapping of runner settings, got {type(data).__name__}"
        )
    data = dict(data)
    if data.get("latency") is False:  # YAML reads a bare `off` as false
        data["latency"] = "off"
    for key, value in data.items():
        if key not in _FIELDS:
            raise SpaceError(
                source,
                str(key),
                f"unknown runner key{did_you_mean(key, _FIELDS)}; allowed: {sorted(_FIELDS)}",
            )
        types = _FIELDS[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise SpaceError(
                source, key, f"expected {' or '.join(t.__name__ for t in types)}, got {value!r}"
            )
    r = replace(Runner(), **dict(data))
    checks = (
        ("latency", r.latency in LATENCY_POLICIES, f"one of {list(LATENCY_POLICIES)}"),
        ("scheduler", r.scheduler in SCHEDULERS, f"one of {list(SCHEDULERS)}"),
        ("sampler", r.sampler in _SAMPLERS, f"one of {list(_SAMPLERS)}"),
        ("cpus_per_trial", r.cpus_per_trial > 0, "a positive number"),
        ("gpus_per_trial", r.gpus_per_trial >= 0, "a number >= 0 (fractions share a GPU)"),
        ("max_failures", r.max_failures >= 0, "an integer >= 0"),
        ("max_concurrent", r.max_concurrent is None or r.max_concurrent >= 1, "an integer >= 1"),
        ("num_cpus", r.num_cpus is None or r.num_cpus >= 1, "an integer >= 1"),
        ("device", r.device in ("cpu", "cuda"), "cpu or cuda"),
        ("object_store_mb", r.object_store_mb >= 64, "an integer >= 64"),
        ("connect_timeout_s", r.connect_timeout_s > 0, "a positive number of seconds"),
    )
    for key, ok, allowed in checks:
        if not ok:
            raise SpaceError(source, key, f"expected {allowed}, got {getattr(r, key)!r}")
    if r.device == "cuda" and r.gpus_per_trial <= 0:
        raise SpaceError(
            source,
            "gpus_per_trial",
            "device cuda needs gpus_per_trial > 0 (e.g. 0.25 to share a GPU)",
        )
    return r


def load_runner(path: str | Path | None) -> Runner:
    """Read a runner profile; ``None`` gives the default local profile."""
    import yaml

    if path is None:
        return Runner()
    p = Path(path)
    if not p.is_file():
        raise SpaceError(str(p), "<file>", "no such file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "<yaml>"
        raise SpaceError(
            str(p), where, f"YAML syntax error: {getattr(e, 'problem', None) or e}"
        ) from None
    return runner_from_dict(data, source=str(p))
