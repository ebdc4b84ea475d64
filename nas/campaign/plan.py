"""Planning a campaign, before Ray: the trials of a survey (constrained random samples, pycls
style) and of an ablation (one factor at a time around a baseline, or the full factorial)."""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

import numpy as np

from nas.errors import SpaceError, UserError
from nas.measure.cost import FAST_COLUMNS, fast_constraint_check, fast_values
from nas.space.candidate import Candidate, CandidateError
from nas.space.pretrain import check_mask
from nas.space.space import Space

__all__ = ["check_ablation", "default_axes", "plan_ablation", "plan_survey"]

log = logging.getLogger(__name__)


def plan_survey(
    space: Space, n: int, seed: int, trial_seed: int | None = None
) -> tuple[list[dict], dict]:
    """N distinct random candidates inside the params/MACs constraints (fast cost path), drawn
    with ``seed``; each trains with ``trial_seed`` (default: ``seed``). A space whose constraints
    no sample meets fails before anything runs, naming what was found."""
    fast = {k: v for k, v in space.constraints.items() if k in FAST_COLUMNS}
    check = fast_constraint_check(fast) if fast else (lambda c: True)
    if fast:
        _require_feasible_samples(space, fast, seed)
    samples, stats = space.sample_distinct(
        n, np.random.default_rng(seed), accept=lambda s: check(s.candidate)
    )
    distinct = len(samples) + stats["rejected"]
    stats["acceptance_rate"] = len(samples) / max(distinct, 1)
    plans = [
        _plan(
            s.candidate,
            seed if trial_seed is None else trial_seed,
            s.train,
            pretrain=s.pretrain,
            params=s.params,
        )
        for s in samples
    ]
    return plans, stats


def plan_ablation(
    space: Space,
    baseline: Candidate,
    axes: list[str],
    seeds: int,
    seed: int,
    *,
    factorial: bool = False,
) -> list[dict]:
    """Baseline + one trial per axis value (everything else fixed), ``seeds`` seeds each; or the
    full factorial over the axes."""
    values = {axis: _axis_values(space, axis) for axis in axes}
    points: list[tuple[str, Any, dict]] = [("baseline", None, {})]
    if factorial:
        for combo in itertools.product(*values.values()):
            point = dict(zip(axes, combo))
            points.append(("factorial", point, point))
    else:
        for axis, vals in values.items():
            points += [(axis, v, {axis: v}) for v in vals]
    plans, seen = [], set()
    for axis, value, override in points:
        try:
            c, train, pre = _point(space, baseline, override)
        except CandidateError as e:
            log.warning("ablation point %s=%s skipped: %s", axis, value, e)
            continue
        effective = {**space.pretrain, **pre}  # no pre-training, however it is said, is one
        work = json.dumps([c.id, train, effective if effective.get("method") == "fcmae" else {}])
        for r in range(seeds):  # a point equal to the baseline is the baseline's trial
            if (work, seed + r) not in seen:
                seen.add((work, seed + r))
                plans.append(_plan(c, seed + r, train, pretrain=pre, axis=axis, axis_value=value))
    return plans


def _point(space: Space, baseline: Candidate, override: dict) -> tuple[Candidate, dict, dict]:
    """An ablation point's candidate, training and pre-training overrides (axes may be
    ``train.*`` or ``pretrain.*`` settings as well as architecture)."""

    def part(prefix: str) -> dict:
        return {k[len(prefix) :]: v for k, v in override.items() if k.startswith(prefix)}

    arch = {k: v for k, v in override.items() if not k.startswith(("train.", "pretrain."))}
    c = Candidate.from_params(arch, base=baseline) if arch else baseline
    train, pre = part("train."), part("pretrain.")
    settings = {**space.pretrain, **pre}
    if settings.get("method", "none") != "none":
        try:
            check_mask(c, settings, source=space.source)
        except SpaceError as e:
            raise CandidateError(f"{e.key_path}: {e.message}") from None
    return c, train, pre


def _require_feasible_samples(space: Space, fast: dict, seed: int, probe: int = 300) -> None:
    rng = np.random.default_rng(seed)
    seen: dict[str, list[float]] = {col: [] for col in fast}
    for _ in range(probe):
        try:
            candidate = space.to_sample(space.sample_params(rng)).candidate
        except CandidateError:
            continue
        values = fast_values(candidate, fast)
        if not _violations(values, fast):
            return
        for col, v in values.items():
            seen[col].append(v)
    if not any(seen.values()):
        return  # no valid sample at all: sample_distinct says so
    parts = [
        f"{col} in [{lo}, {hi}] (samples have {min(seen[col]):.3g} to {max(seen[col]):.3g})"
        for col, (lo, hi) in fast.items()
    ]
    raise UserError(
        f"{space.source}: constraints: no sample of the space meets {' and '.join(parts)} in "
        f"{probe} draws; widen the constraints or narrow the space"
    )


def _violations(values: dict[str, float], windows: dict) -> list[str]:
    return [
        f"{col} = {v:.3g}, outside [{windows[col][0]}, {windows[col][1]}]"
        for col, v in values.items()
        if (windows[col][0] is not None and v < windows[col][0])
        or (windows[col][1] is not None and v > windows[col][1])
    ]


def check_ablation(space: Space, baseline: Candidate, plans: list[dict], source: str) -> list:
    """Before an ablation runs: a baseline outside the params/MACs constraints is one clear error
    (every comparison needs it trained); returns the variants that the constraints will stop, as
    ``(axis, value, violation)``."""
    fast = {k: v for k, v in space.constraints.items() if k in FAST_COLUMNS}
    if not fast:
        return []
    bad = _violations(fast_values(baseline, fast), fast)
    if bad:
        col = bad[0].split(" ")[0]
        raise UserError(
            f"{space.source}: constraints.{col}: the ablation baseline ({source}) has {bad[0]}: "
            f"it would not be trained and no effect could be measured. Pass --baseline with a "
            f"candidate inside the constraints, or widen constraints.{col}"
        )
    out = []
    for plan in plans:
        found = _violations(fast_values(Candidate.from_dict(plan["candidate"]), fast), fast)
        if found and plan["axis"] != "baseline":
            out.append((plan["axis"], plan["axis_value"], found[0]))
    return list(dict.fromkeys(out))


def _axis_values(space: Space, axis: str) -> list:
    def matches(name: str) -> bool:  # "stage.kernel" also names the per-stage dims stage.<i>.kernel
        parts = name.split(".")
        return name == axis or (
            len(parts) == 3 and parts[0] == "stage" and axis == f"stage.{parts[2]}"
        )

    names = [d for d in space.dims if matches(d.name)]
    grid = next((d.grid() for d in names if d.grid() is not None and d.kind != "derive"), None)
    if not grid:
        known = sorted(
            {
                d.name if not d.name.startswith("stage.") else "stage." + d.name.split(".")[-1]
                for d in space.dims
                if d.kind in ("choice", "int") and not d.name.startswith("vars.")
            }
        )
        raise UserError(
            f"--axes: {axis!r} is not a finite dimension of {space.source}; choose from {known}"
        )
    return list(grid)


def _plan(
    c: Candidate, seed: int, train: dict, *, pretrain=None, params=None, axis=None, axis_value=None
) -> dict:
    return {
        "candidate": c.to_dict(),
        "seed": seed,
        "train": train,
        "pretrain": dict(pretrain or {}),
        "axis": axis,
        "axis_value": None if axis_value is None else json.dumps(axis_value),
        "params": params,
    }


def default_axes(space: Space) -> list[str]:
    """The axes of an ablation when none are given: every unconditional choice dimension."""
    axes = []
    for d in space.dims:
        if d.kind != "choice" or d.name.startswith(("vars.", "train.")) or d.when:
            continue
        name = "stage." + d.name.split(".")[-1] if d.name.startswith("stage.") else d.name
        if name not in axes:
            axes.append(name)
    return axes
