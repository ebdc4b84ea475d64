"""Design spaces: YAML -> a typed ``Space`` that samples (numpy) and suggests (Optuna) candidates.

See docs/design-spaces.md for the language. In short, every entry under ``space:`` is a
dimension: a fixed value, ``{choice: [...]}``, ``{int: [lo, hi], step: s, log: bool}``,
``{float: [lo, hi], log: bool}`` or ``{derive: "expression"}``, each optionally with
``when: {other: value | [values]}``. Entries under ``space.stage`` are sampled once per stage
(``tie: true`` samples one value for all stages; a YAML list gives one spec per stage); entries
under ``space.train`` are training settings. Dimensions are evaluated in dependency order.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from nas.errors import SpaceError
from nas.space.candidate import (
    Candidate,
    CandidateError,
)
from nas.space.claims import ClaimSet
from nas.space.dims import Dim, decode, encode, grid_size
from nas.space.expr import ExprError
from nas.space.pretrain import check_mask

__all__ = ["Sample", "Space"]


class Sample(NamedTuple):
    """One sampled point: its flat params, the Candidate, the training and the pre-training
    overrides."""

    params: dict[str, Any]
    candidate: Candidate
    train: dict[str, Any]
    pretrain: dict[str, Any] = {}  # noqa: RUF012 - a NamedTuple default, never mutated

    @property
    def id(self) -> str:
        if not self.train and not self.pretrain:
            return self.candidate.id
        import hashlib

        key = self.candidate.to_json() + json.dumps(self.train, sort_keys=True)
        if self.pretrain:
            key += json.dumps(self.pretrain, sort_keys=True)
        return hashlib.sha1(key.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------- the space
@dataclass(frozen=True)
class Space:
    """A parsed design space. Build with ``load_space(path)`` or ``parse_space(data)``."""

    name: str
    dims: tuple[Dim, ...]
    base: Candidate
    stages: int
    data: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    pretrain: dict = dataclasses.field(default_factory=dict)
    measure: dict = dataclasses.field(default_factory=dict)  # the measure: section (proxies, ERF)
    objectives: dict = dataclasses.field(default_factory=dict)
    constraints: dict = dataclasses.field(default_factory=dict)
    sampler: str = "tpe"
    description: str = ""
    source: str = "<space>"
    claims: ClaimSet | None = None  # the claims: block (nas.space.claims)

    # -------------------------------------------------------------- sampling
    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        """One point of the space as flat params (deterministic for a seeded generator)."""
        values: dict[str, Any] = {}
        for dim in self.dims:
            if dim.active(values):
                values[dim.name] = (
                    self._derive(dim, values) if dim.kind == "derive" else dim.draw(rng)
                )
        return values

    def suggest(self, trial) -> dict[str, Any]:
        """Optuna define-by-run: the same structure as ``sample_params``; only suggests."""
        values: dict[str, Any] = {}
        for dim in self.dims:
            if dim.active(values):
                values[dim.name] = (
                    self._derive(dim, values) if dim.kind == "derive" else dim.suggest(trial)
                )
        return values

    def optuna_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The Optuna representation of flat params (for ``FixedTrial`` / ``enqueue_trial``)."""
        kinds = {d.name: d.kind for d in self.dims}
        return {
            k: encode(v) for k, v in params.items() if kinds.get(k) not in (None, "fixed", "derive")
        }

    def from_optuna_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Inverse of ``optuna_params``: decode categorical values that travelled as JSON."""
        kinds = {d.name: d.kind for d in self.dims}
        return {k: decode(v) if kinds.get(k) == "choice" else v for k, v in params.items()}

    def _derive(self, dim: Dim, values: Mapping[str, Any]) -> Any:
        try:
            return dim.derive(values)
        except ExprError as e:
            raise SpaceError(self.source, dim.key_path, str(e)) from None

    def to_sample(self, params: Mapping[str, Any]) -> Sample:
        """Flat params -> Sample (raises CandidateError for an invalid combination)."""
        arch = {
            k: v for k, v in params.items() if not k.startswith(("train.", "pretrain.", "vars."))
        }
        train = {k[len("train.") :]: v for k, v in params.items() if k.startswith("train.")}
        pre = {k[len("pretrain.") :]: v for k, v in params.items() if k.startswith("pretrain.")}
        candidate = Candidate.from_params(arch, base=self.base)
        settings = {**self.pretrain, **pre}
        if settings.get("method", "none") != "none":
            try:
                check_mask(candidate, settings)
            except SpaceError as e:  # this candidate cannot keep the mask: not a valid point
                raise CandidateError(f"{e.key_path}: {e.message}") from None
        return Sample(dict(params), candidate, train, pre)

    def sample(self, rng: np.random.Generator, *, max_tries: int = 1000) -> Sample:
        """One valid sample (rejection sampling over invalid combinations)."""
        last = None
        for _ in range(max_tries):
            try:
                return self.to_sample(self.sample_params(rng))
            except CandidateError as e:
                last = e
        raise SpaceError(
            self.source, "space", f"no valid candidate in {max_tries} draws; last error: {last}"
        )

    def sample_distinct(
        self, n: int, rng: np.random.Generator, *, accept=None, max_tries: int | None = None
    ) -> tuple[list[Sample], dict[str, int]]:
        """``n`` distinct valid samples (deduplicated by id), optionally filtered by ``accept``.

        Returns the samples and counters: draws, invalid, duplicate, rejected (by ``accept``).
        """
        max_tries = max_tries or max(2000, 50 * n)
        out: list[Sample] = []
        seen: set[str] = set()
        stats = {"draws": 0, "invalid": 0, "duplicate": 0, "rejected": 0}
        while len(out) < n and stats["draws"] < max_tries:
            stats["draws"] += 1
            try:
                s = self.to_sample(self.sample_params(rng))
            except CandidateError:
                stats["invalid"] += 1
                continue
            if s.id in seen:
                stats["duplicate"] += 1
                continue
            seen.add(s.id)
            if accept is not None and not accept(s):
                stats["rejected"] += 1
                continue
            out.append(s)
        if len(out) < n:
            raise SpaceError(
                self.source,
                "space",
                f"found only {len(out)} distinct valid candidates of {n} requested in {stats['draws']} draws "
                f"({stats['invalid']} invalid, {stats['duplicate']} duplicates, {stats['rejected']} rejected)",
            )
        return out, stats

    # -------------------------------------------------------------- size
    def _controlling(self) -> set[str]:
        return set().union(*(d.depends_on for d in self.dims)) if self.dims else set()

    def cardinality(self, *, max_branches: int = 1_000_000) -> float:
        """Number of distinct parameter points (``math.inf`` with a float range).

        Counted exactly under ``when:`` conditions by branching only on the dimensions that other
        dimensions read; counts points before Candidate validation and canonicalisation.
        """
        controlling = self._controlling()
        budget = [max_branches]

        def count(i: int, values: dict) -> float:
            if i == len(self.dims):
                return 1
            dim = self.dims[i]
            if not dim.active(values):
                return count(i + 1, values)
            if dim.kind == "derive":
                if dim.name in controlling:
                    return count(i + 1, {**values, dim.name: self._derive(dim, values)})
                return count(i + 1, values)
            grid = dim.grid()
            if grid is None:
                return math.inf
            size = grid_size(grid)
            if dim.name not in controlling:
                return size * count(i + 1, values)
            budget[0] -= size
            if budget[0] < 0:
                raise SpaceError(
                    self.source,
                    "space",
                    f"too many conditional branches to count (> {max_branches})",
                )
            return sum(count(i + 1, {**values, dim.name: v}) for v in grid)

        return count(0, {})

    def enumerate(self, *, limit: int = 100_000) -> Iterator[dict[str, Any]]:
        """Every parameter point of a finite space with at most ``limit`` points."""
        size = self.cardinality()
        if size > limit:
            raise SpaceError(
                self.source, "space", f"has {size} points; enumerate() is limited to {limit}"
            )

        def walk(i: int, values: dict):
            if i == len(self.dims):
                yield dict(values)
                return
            dim = self.dims[i]
            if not dim.active(values):
                yield from walk(i + 1, values)
            elif dim.kind == "derive":
                yield from walk(i + 1, {**values, dim.name: self._derive(dim, values)})
            else:
                for v in dim.grid():
                    yield from walk(i + 1, {**values, dim.name: v})

        yield from walk(0, {})

    def describe(self) -> list[str]:
        """Human-readable lines: one per dimension with its values and condition."""
        lines = []
        for d in self.dims:
            if d.kind in ("choice", "fixed"):
                what = (
                    f"{d.kind} {list(d.values)}" if d.kind == "choice" else f"fixed {d.values[0]!r}"
                )
            elif d.kind == "derive":
                what = f"derive {d.expr.source!r}"
            else:
                extra = (f" step {d.step}" if d.step and d.step != 1 else "") + (
                    " log" if d.log else ""
                )
                what = f"{d.kind} [{d.low}, {d.high}]{extra}"
            cond = (
                "" if not d.when else "  when " + ", ".join(f"{n} in {list(v)}" for n, v in d.when)
            )
            lines.append(f"{d.name:<24} {what}{cond}")
        return lines
