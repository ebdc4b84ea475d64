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
from nas.documents import DocumentError, read_yaml
from nas.errors import SpaceError, did_you_mean

__all__ = ["Runner", "load_runner", "LATENCY_POLICIES", "SCHEDULERS"]

# serial: old name of service; predict: latency_pred_ms from a fitted model (`nas latency-model`)
LATENCY_POLICIES = ("auto", "service", "inline", "off", "predict", "serial")
LATENCY_KEYS = (
    "mode",
    "cpus",
    "gpus",
    "threads",
    "resources",
    "batch",
    "dtype",
    "channels_last",
    "reference",
    "model",
    "warmup_s",
    "rounds",
    "max_rounds",
    "max_ci",
)
# latency: keys that set the timing protocol's rounds (nas.measure.latency.LatencyProtocol);
# unset ones keep the protocol's defaults
TIMING_KEYS = ("warmup_s", "rounds", "max_rounds", "max_ci")
DTYPES = ("float32", "bfloat16", "float16")
SCHEDULERS = (None, *vocab.SCHEDULERS)
AUTH_MODES = ("token", "disabled")  # Ray's RAY_AUTH_MODE values (nas.campaign.auth)
_SAMPLERS = (None, *vocab.SAMPLERS)
# Ray's HyperBandScheduler fills a bracket only with trials that are alive together; a search
# creates its trials as slots free up (max_concurrent), so a bracket never fills, every trial
# runs the full budget and nothing is stopped (a 6-trial, 3-epoch search here: 0 stopped)
HYPERBAND = (
    "hyperband is not supported: Ray's HyperBandScheduler fills a bracket only with trials "
    "that run at the same time, so in a search (trials created as slots free up) it stops no "
    "trial early; expected 'asha' (asynchronous successive halving) or null"
)


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
    latency: str = "auto"  # auto | service | inline | off
    latency_cpus: float | None = None  # reserved by the latency service (default: its threads)
    latency_gpus: float | None = None  # default: 1 with device cuda, else 0
    latency_threads_: int | None = None  # pinned threads while timing (default 1)
    latency_resources: tuple = ()  # extra Ray resources of the service, e.g. (("latency_node", 1),)
    latency_batch: int = 1  # the protocol: batch, autocast dtype (CUDA), memory layout
    latency_dtype: str = "float32"
    latency_channels_last: bool = True
    # the candidate timed in the same rounds (latency_rel): None = the space's base candidate,
    # a candidate YAML path, or "off"
    latency_reference: str | None = None
    latency_model: str | None = None  # mode predict: the latency model (JSON) it predicts with
    # the timing protocol's rounds, e.g. (("rounds", 3), ("warmup_s", 0.2)); unset: its defaults
    latency_timing: tuple = ()
    memory_batch: int | None = None  # training memory measured at this batch (default: train's)
    sampler: str | None = None  # overrides the space's sampler in `nas search`
    scheduler: str | None = None  # asha on val_acc (search)
    device: str = "cpu"
    object_store_mb: int = 256
    connect_timeout_s: float = 30.0
    auth: str = "token"  # Ray token authentication; "disabled" opts out (warned each run)
    # a cluster that shrinks: how long trials wait for a node that fits one (None: forever, for a
    # cluster with an autoscaler) before the campaign stops (exit 3; `nas resume` continues)
    wait_for_resources_s: float | None = 600.0
    status_interval_s: float = 60.0  # a status line at least this often while a campaign runs

    @property
    def effective_address(self) -> str | None:
        return os.environ.get("RAY_ADDRESS") or self.address

    def concurrency(self) -> int | None:
        """``max_concurrent``; None: as many trials as the cluster's resources allow (Ray decides)."""
        return self.max_concurrent

    def latency_inline(self) -> bool:
        """Time inside the trial (the trial owns its device, e.g. one trial per GPU)."""
        return self.latency == "inline"

    def latency_service(self) -> bool:
        """Time on the campaign's latency service (a Ray actor that owns its resources)."""
        return self.latency in ("auto", "service", "serial")

    def latency_threads(self) -> int:
        return self.latency_threads_ or 1

    def latency_settings(self) -> dict[str, Any]:
        """The latency protocol's settings (``nas.measure.latency.LatencyProtocol`` fields)."""
        return {
            "batch": self.latency_batch,
            "dtype": self.latency_dtype,
            "channels_last": self.latency_channels_last,
            "threads": self.latency_threads(),
            **dict(self.latency_timing),
        }

    def latency_placement(self) -> dict[str, Any]:
        """Ray actor options of the latency service: the cores (or GPU) it reserves."""
        gpus = self.latency_gpus if self.latency_gpus is not None else float(self.device == "cuda")
        cpus = self.latency_cpus if self.latency_cpus is not None else self.latency_threads()
        return {"num_cpus": cpus, "num_gpus": gpus, "resources": dict(self.latency_resources)}


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
    "memory": (Mapping,),
    "sampler": (str, type(None)),
    "scheduler": (str, type(None)),
    "device": (str,),
    "object_store_mb": (int,),
    "connect_timeout_s": (int, float),
    "auth": (str,),
    "wait_for_resources_s": (int, float, type(None)),
    "status_interval_s": (int, float),
}


def runner_from_dict(data: Any, *, source: str) -> Runner:
    if data is None:  # an empty, comment-only or `null` file
        raise SpaceError(
            source, "<root>", f"empty document: expected a mapping with keys {sorted(_FIELDS)}"
        )
    if not isinstance(data, Mapping):
        raise SpaceError(
            source, "<root>", f"expected a mapping of runner settings, got {type(data).__name__}"
        )
    data = dict(data)
    if data.get("latency") is False:  # YAML reads a bare `off` as false
        data["latency"] = "off"
    extra = {}
    if isinstance(data.get("latency"), Mapping):
        extra = _latency_options(data.pop("latency"), source=source)
    if "memory" in data:
        extra.update(_memory_options(data.pop("memory"), source=source))
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
    if data.get("scheduler") == "hyperband":
        raise SpaceError(source, "scheduler", HYPERBAND)
    r = replace(Runner(), **data, **extra)
    _check_values(r, source)
    if r.device == "cuda" and r.gpus_per_trial <= 0:
        raise SpaceError(
            source,
            "gpus_per_trial",
            "device cuda needs gpus_per_trial > 0 (e.g. 0.25 to share a GPU)",
        )
    return r


def _check_values(r: Runner, source: str) -> None:
    """Each setting within what it allows (types were checked already)."""
    checks = (
        ("latency", r.latency in LATENCY_POLICIES, f"one of {list(LATENCY_POLICIES[:5])}"),
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
        ("auth", r.auth in AUTH_MODES, f"one of {list(AUTH_MODES)}"),
        (
            "wait_for_resources_s",
            r.wait_for_resources_s is None or r.wait_for_resources_s > 0,
            "a positive number of seconds, or null (wait forever)",
        ),
        ("status_interval_s", r.status_interval_s > 0, "a positive number of seconds"),
    )
    for key, ok, allowed in checks:
        if not ok:
            raise SpaceError(source, key, f"expected {allowed}, got {getattr(r, key)!r}")
    if r.latency == "predict" and r.latency_model is None:
        raise SpaceError(
            source, "latency.model", "mode predict needs a model: {mode: predict, model: PATH}"
        )


def _latency_options(value: Mapping, *, source: str) -> dict[str, Any]:
    """``latency: {mode, cpus, gpus, threads, resources, batch, dtype, channels_last, reference,
    model}`` and the timing keys -> Runner fields."""
    _no_unknown_key(value, source=source)
    out: dict[str, Any] = {}
    for key, v in value.items():
        number = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
        if key == "mode":
            out["latency"] = "off" if v is False else v
        elif key == "resources":
            ok = isinstance(v, Mapping) and all(
                isinstance(n, (int, float)) and not isinstance(n, bool) and n > 0
                for n in v.values()
            )
            if not ok:
                raise SpaceError(
                    source, "latency.resources", f"expected {{name: amount > 0}}, got {v!r}"
                )
            out["latency_resources"] = tuple(sorted((str(k), float(n)) for k, n in v.items()))
        elif key in ("threads", "batch"):
            if not (number and isinstance(v, int) and v >= 1):
                raise SpaceError(source, f"latency.{key}", f"expected an integer >= 1, got {v!r}")
            out["latency_threads_" if key == "threads" else "latency_batch"] = v
        elif key == "dtype":
            if v not in DTYPES:
                raise SpaceError(
                    source, "latency.dtype", f"expected one of {list(DTYPES)}, got {v!r}"
                )
            out["latency_dtype"] = v
        elif key == "reference":
            if v is False or v == "off":
                out["latency_reference"] = "off"
            elif isinstance(v, str) and v:
                out["latency_reference"] = v
            else:
                raise SpaceError(
                    source,
                    "latency.reference",
                    f"expected a candidate YAML path or off, got {v!r}",
                )
        elif key == "model":
            if not (isinstance(v, str) and v):
                raise SpaceError(source, "latency.model", f"expected a file path, got {v!r}")
            out["latency_model"] = v
        elif key in TIMING_KEYS:
            continue  # below, together
        elif key == "channels_last":
            if not isinstance(v, bool):
                raise SpaceError(
                    source, "latency.channels_last", f"expected true or false, got {v!r}"
                )
            out["latency_channels_last"] = v
        elif not number:
            raise SpaceError(source, f"latency.{key}", f"expected a number >= 0, got {v!r}")
        else:
            out["latency_cpus" if key == "cpus" else "latency_gpus"] = v
    return out | _timing_options(value, source=source)


def _no_unknown_key(value: Mapping, *, source: str) -> None:
    for key in value:
        if key not in LATENCY_KEYS:
            hint = did_you_mean(key, LATENCY_KEYS)
            raise SpaceError(
                source, f"latency.{key}", f"unknown key{hint}; allowed: {list(LATENCY_KEYS)}"
            )


def _timing_options(value: Mapping, *, source: str) -> dict[str, Any]:
    """``latency:``'s timing keys -> ``latency_timing`` (only the keys given)."""
    timing = {k: _timing_value(k, v, source=source) for k, v in value.items() if k in TIMING_KEYS}
    if timing.get("max_rounds", float("inf")) < timing.get("rounds", 1):
        raise SpaceError(
            source,
            "latency.max_rounds",
            f"expected an integer >= latency.rounds ({timing['rounds']}), got {timing['max_rounds']!r}",
        )
    return {"latency_timing": tuple(sorted(timing.items()))} if timing else {}


def _timing_value(key: str, v: Any, *, source: str) -> float | int:
    """One ``latency:`` timing key, checked: warmup_s >= 0 s, rounds and max_rounds integers
    >= 3 (the median's interval needs three rounds), max_ci in (0, 1]."""
    real = isinstance(v, (int, float)) and not isinstance(v, bool)
    if key == "warmup_s" and real and v >= 0:
        return float(v)
    if key in ("rounds", "max_rounds") and real and isinstance(v, int) and v >= 3:
        return v
    if key == "max_ci" and real and 0 < v <= 1:
        return float(v)
    allowed = {
        "warmup_s": "a number of seconds >= 0",
        "rounds": "an integer >= 3",
        "max_rounds": "an integer >= 3",
        "max_ci": "a fraction of the median in (0, 1]",
    }[key]
    raise SpaceError(source, f"latency.{key}", f"expected {allowed}, got {v!r}")


def _memory_options(value: Any, *, source: str) -> dict[str, Any]:
    """``memory: {batch: N}`` (default: the training batch) -> Runner fields."""
    if not isinstance(value, Mapping) or set(value) - {"batch"}:
        raise SpaceError(source, "memory", f"expected a mapping {{batch: N}}, got {value!r}")
    batch = value.get("batch")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise SpaceError(source, "memory.batch", f"expected an integer >= 1, got {batch!r}")
    return {"memory_batch": batch}


def load_runner(path: str | Path | None) -> Runner:
    """Read a runner profile; ``None`` gives the default local profile."""
    if path is None:
        return Runner()
    p = Path(path)
    try:
        data = read_yaml(p)
    except DocumentError as e:
        raise SpaceError(str(p), e.where, e.message) from None
    return runner_from_dict(data, source=str(p))
