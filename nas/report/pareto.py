"""Objectives, budgets, Pareto fronts (non-dominated sorting, Deb et al. 2002), exact hypervolume,
knees and the best row under budgets.

Non-dominated sorting and hypervolume come from ``moocore`` (C code by the authors of the
reference hypervolume algorithms: HV3D+/HV4D+, Guerreiro & Fonseca 2017); a hand-written HSO
(While et al. 2006) stays as the independent check in the tests and ``nas bench report``."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import moocore
import numpy as np
import pandas as pd

from nas.errors import UserError, did_you_mean
from nas.vocab import COST_COLUMNS

__all__ = [
    "COST_COLUMNS",
    "ParetoResult",
    "apply_budgets",
    "hypervolume",
    "hypervolume_over_trials",
    "pareto_front",
    "pareto_ranks",
    "parse_budget",
    "parse_objectives",
]

SENSES = ("max", "min")
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BUDGET = re.compile(rf"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|<|>)\s*({_NUMBER})\s*$")

Budget = tuple[str, str, float]


# ---------------------------------------------------------------------- objectives and budgets
def parse_objectives(spec: Mapping[str, str] | str | Sequence[str]) -> dict[str, str]:
    """``{column: "max" | "min"}`` from a mapping, from ``"val_acc:max,latency_ms_p50:min"`` or
    from a list of ``"column:sense"`` strings. Order is kept: the first objective sorts the front
    and picks ``best``."""
    if isinstance(spec, Mapping):
        items = [(str(k), str(v)) for k, v in spec.items()]
    else:
        texts = [spec] if isinstance(spec, str) else list(spec)
        items = [_split_objective(p) for t in texts for p in str(t).split(",") if p.strip()]
    out: dict[str, str] = {}
    for col, sense in items:
        sense = sense.strip().lower()
        if sense not in SENSES:
            raise UserError(
                f"objective {col!r}: sense {sense!r} is not allowed; expected 'max' or 'min'"
            )
        if col in out:
            raise UserError(f"objective {col!r} is given twice")
        out[col] = sense
    if not out:
        raise UserError("objectives: none given; expected e.g. 'val_acc:max,latency_ms_p50:min'")
    return out


def _split_objective(text: str) -> tuple[str, str]:
    col, sep, sense = text.strip().rpartition(":")
    if not sep or not col.strip():
        raise UserError(
            f"objective {text.strip()!r}: expected 'column:max' or 'column:min' "
            "(e.g. 'val_acc:max,latency_ms_p50:min')"
        )
    return col.strip(), sense


def parse_budget(expr: str) -> Budget:
    """``"latency_ms_p50<=2"`` -> ``("latency_ms_p50", "<=", 2.0)``; ops ``<= < >= > ==``."""
    m = _BUDGET.match(expr) if isinstance(expr, str) else None
    if m is None:
        raise UserError(
            f"budget {expr!r}: expected '<column><op><number>' with op one of "
            f"{', '.join(_OPS)} (e.g. 'latency_ms_p50<=2' or 'params_m < 1.5')"
        )
    return m[1], m[2], float(m[3])


def apply_budgets(df: pd.DataFrame, budgets: Iterable[str | Budget]) -> pd.Series:
    """Rows that satisfy every budget (``"col<=x"`` strings or ``(column, op, value)``); NaN
    fails a budget."""
    keep = pd.Series(True, index=df.index)
    for budget in [budgets] if isinstance(budgets, str) else budgets:
        col, op, value = parse_budget(budget) if isinstance(budget, str) else budget
        if op not in _OPS:
            raise UserError(
                f"budget on {col!r}: op {op!r} is not allowed; expected one of {list(_OPS)}"
            )
        keep &= _OPS[op](_numeric(df, col, what="budget"), value)
    return keep


def _numeric(df: pd.DataFrame, col: str, *, what: str, missing_ok: bool = False) -> pd.Series:
    """A column as floats (None and non-numbers -> NaN); a missing column is a UserError."""
    if col not in df.columns:
        if missing_ok:
            return pd.Series(np.nan, index=df.index)
        numeric = sorted(c for c in df.columns if df[c].dtype.kind in "fiub")
        raise UserError(
            f"{what} column {col!r} is not in the table{did_you_mean(col, numeric)}; "
            f"numeric columns: {', '.join(numeric)}"
        )
    return pd.to_numeric(df[col], errors="coerce").astype(float)


def _ok(df: pd.DataFrame) -> pd.Series:
    if "status" not in df.columns:
        return pd.Series(True, index=df.index)
    return df["status"] == "ok"


# ---------------------------------------------------------------------- Pareto
def _signs(senses: Sequence[str]) -> np.ndarray:
    bad = [s for s in senses if s not in SENSES]
    if bad:
        raise UserError(f"objective sense {bad[0]!r} is not allowed; expected 'max' or 'min'")
    return np.array([-1.0 if s == "max" else 1.0 for s in senses])


def _minimise(values: np.ndarray, senses: Sequence[str]) -> np.ndarray:
    """Values (n, k) turned into a minimisation problem (max objectives negated)."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] != len(senses):
        raise ValueError(f"expected values of shape (n, {len(senses)}), got {v.shape}")
    return v * _signs(senses)


def pareto_ranks(values: np.ndarray, senses: Sequence[str]) -> np.ndarray:
    """Non-dominated sorting rank of each row of finite ``values`` (n, k): 0 = non-dominated,
    1 = non-dominated once rank 0 is removed, ... Identical rows do not dominate each other (they
    get the same rank). ``moocore.pareto_rank``: O(n log n) in 2-D, one front at a time above."""
    v = _minimise(values, senses)
    if not len(v):
        return np.empty(0, dtype=int)
    return moocore.pareto_rank(v).astype(int)


def hypervolume(points: np.ndarray, reference: Sequence[float], senses: Sequence[str]) -> float:
    """Exact volume dominated by ``points`` (n, k) and bounded by ``reference``, in the objectives'
    own units. Points not strictly better than the reference in every objective add nothing.
    ``moocore.hypervolume``: O(n log n) in 2-D and 3-D, O(n^2) in 4-D (HV4D+)."""
    return _hv_min(*_minimise_points(points, reference, senses))


def _hv_min(p: np.ndarray, ref: np.ndarray, volume=None) -> float:
    """:func:`hypervolume` of minimisation points against a minimisation reference, by
    ``moocore`` or by ``volume(points, ref)`` (the reference HSO)."""
    p = p[(p < ref).all(axis=1)]
    if not len(p):
        return 0.0
    return float(volume(p, ref) if volume else moocore.hypervolume(p, ref=ref))


def _minimise_points(
    points: np.ndarray, reference: Sequence[float], senses: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    ref = _minimise(np.asarray(reference, dtype=float)[None, :], senses)[0]
    return _minimise(np.asarray(points, dtype=float).reshape(-1, len(senses)), senses), ref


# ---------------------------------------------------------------------- reference implementation
def _hypervolume_hso(
    points: np.ndarray, reference: Sequence[float], senses: Sequence[str]
) -> float:
    """:func:`hypervolume` by hand-written HSO slicing (While et al. 2006), exponential in the
    number of objectives: the independent check of ``moocore`` in the tests and in
    ``nas bench report``, not used by the reports."""
    return _hv_min(*_minimise_points(points, reference, senses), volume=_hso)


def _hso(p: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of minimisation points all better than ``ref``: a sweep in 2-D, slicing the
    last objective above (HSO)."""
    if p.shape[1] == 1:
        return ref[0] - p[:, 0].min()
    if p.shape[1] == 2:
        p = p[np.lexsort((p[:, 1], p[:, 0]))]
        height = ref[1] - np.minimum.accumulate(p[:, 1])
        return float(np.sum((np.append(p[1:, 0], ref[0]) - p[:, 0]) * height))
    p = np.unique(p, axis=0)
    p = p[~_dominance(p).any(axis=0)]
    p = p[np.argsort(p[:, -1], kind="stable")]
    depth = np.diff(np.append(p[:, -1], ref[-1]))
    return sum(d * _hso(p[: i + 1, :-1], ref[:-1]) for i, d in enumerate(depth) if d > 0)


def _dominance(v: np.ndarray) -> np.ndarray:
    """``d[i, j]``: row i dominates row j (minimisation); computed in row chunks to bound memory."""
    n, k = v.shape
    out = np.empty((n, n), dtype=bool)
    step = max(1, 4_000_000 // max(n * k, 1))
    for s in range(0, n, step):
        a = v[s : s + step, None, :]
        out[s : s + step] = (a <= v[None]).all(-1) & (a < v[None]).any(-1)
    return out


@dataclass
class ParetoResult:
    """The Pareto analysis of a table (all Series aligned to the table's index).

    Attributes:
        objectives: ``{column: "max" | "min"}`` in the order given.
        eligible: rows with status ``ok`` and a finite value for every objective.
        rank: non-dominated sorting rank of eligible rows (0 = the front), NaN for the others.
        front: the rank-0 rows, best first by the first objective (ties: the next objectives).
        reference: the hypervolume reference point, ``{column: value}``.
        hypervolume: of the front against ``reference``, in the objectives' own units.
        knees: index labels of the front's knee point(s) (see :func:`_knees`).
        best: index label of the best eligible row satisfying every budget, or None.
    """

    objectives: dict[str, str]
    eligible: pd.Series
    rank: pd.Series
    front: pd.DataFrame
    reference: dict[str, float]
    hypervolume: float
    knees: list
    best: Any | None


def pareto_front(
    df: pd.DataFrame,
    objectives: Mapping[str, str] | str | Sequence[str],
    *,
    budgets: Iterable[str | Budget] = (),
    reference: Mapping[str, float] | None = None,
) -> ParetoResult:
    """Non-dominated sorting of the finished rows, the front, its hypervolume and knee(s), and the
    best row under ``budgets`` (budgets select ``best`` only; the front is over all rows)."""
    obj = parse_objectives(objectives)
    senses = list(obj.values())
    values = pd.DataFrame({c: _numeric(df, c, what="objective") for c in obj}, index=df.index)
    eligible = _ok(df) & np.isfinite(values).all(axis=1)
    rank = pd.Series(np.nan, index=df.index)
    rank[eligible] = pareto_ranks(values[eligible].to_numpy(), senses)
    on_front = (rank == 0).to_numpy()
    front_v = _minimise(values[on_front].to_numpy(), senses)
    order = np.lexsort(front_v.T[::-1])
    front = df[on_front].iloc[order]
    ref = _reference(values[eligible], obj, reference)
    hv = hypervolume(values[on_front].to_numpy(), list(ref.values()), senses)
    knees = list(front.index[_knees(front_v[order])]) if len(front) else []
    candidates = (eligible & apply_budgets(df, budgets)).to_numpy()
    best = None
    if candidates.any():
        first = np.lexsort(_minimise(values[candidates].to_numpy(), senses).T[::-1])[0]
        best = df.index[candidates][first]
    return ParetoResult(obj, eligible, rank, front, ref, hv, knees, best)


def _reference(
    values: pd.DataFrame, objectives: dict[str, str], given: Mapping[str, float] | None
) -> dict[str, float]:
    """The given reference, or per objective the worst eligible value widened by 10% of the range
    (of |worst| when the range is 0, of 1.0 when that is 0 too); NaN without eligible rows."""
    if given is not None:
        missing = [c for c in objectives if c not in given]
        if missing:
            raise UserError(
                f"reference: no value for objective {missing[0]!r}; objectives: {list(objectives)}"
            )
        return {c: float(given[c]) for c in objectives}
    out = {}
    for col, sense in objectives.items():
        x = values[col].to_numpy()
        if not len(x):
            out[col] = math.nan
            continue
        worst = x.min() if sense == "max" else x.max()
        pad = 0.1 * (float(np.ptp(x)) or abs(float(worst)) or 1.0)
        out[col] = float(worst - pad if sense == "max" else worst + pad)
    return out


def _knees(v: np.ndarray) -> np.ndarray:
    """Positions of the knee point(s) of a front given as minimisation values (m, k).

    The rule (any number of objectives): normalise each objective to [0, 1] over the front (0 =
    the front's best value); the knee is the member with the smallest sum of normalised values,
    among the members that are not the best on any objective (the extremes) when such members
    exist. With 2 objectives the extremes are (0, 1) and (1, 0), so this is the member farthest
    on the ideal side of the line through them (Das 1999's maximum bulge) on a convex front, and
    the member nearest that line on a concave or straight one: a front of >= 3 members always has
    a knee. Ties (within 1e-12) are all knees. Members with equal values (one candidate's seeds)
    count as one and share the verdict. One member (or members all equal) is its own knee; two
    distinct members are both extremes, a trade-off with no knee between them.
    """
    # members with equal values (e.g. one candidate's seeds) count once and share the verdict
    distinct, member = np.unique(v, axis=0, return_inverse=True)
    member = member.reshape(-1)
    span = np.ptp(distinct, axis=0)
    if not span.any():
        return np.arange(len(v))
    if len(distinct) < 3:
        return np.arange(0)
    u = (distinct - distinct.min(axis=0)) / np.where(span > 0, span, 1.0)
    extreme = ((u <= 1e-12) & (span > 0)).any(axis=1)
    pool = np.flatnonzero(~extreme) if (~extreme).any() else np.arange(len(distinct))
    score = u[pool].sum(axis=1)
    return np.flatnonzero(np.isin(member, pool[score <= score.min() + 1e-12]))


def hypervolume_over_trials(
    df: pd.DataFrame,
    objectives: Mapping[str, str] | str | Sequence[str],
    reference: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Hypervolume of the front of the eligible rows seen so far, after each trial in finish order
    (``finished_at`` when the table has it, else table order), against one fixed reference (default:
    that of the whole table). Columns ``n_trials``, ``hypervolume``; non-decreasing.

    Incremental: the front seen so far is kept, and its volume recomputed only when a trial
    enters it (about 1,000 times for 10,000 trials with a final front of ~500 in 4-D)."""
    result = pareto_front(df, objectives, reference=reference)
    senses = list(result.objectives.values())
    ref = _minimise(np.array([list(result.reference.values())]), senses)[0]
    values = pd.DataFrame({c: _numeric(df, c, what="objective") for c in result.objectives})
    order = np.arange(len(df))
    if "finished_at" in df.columns:
        order = np.argsort(_numeric(df, "finished_at", what="time").to_numpy(), kind="stable")
    v = _minimise(values.to_numpy()[order], senses)
    eligible = result.eligible.to_numpy()[order]
    front, hv, curve = np.empty((0, len(senses))), 0.0, []
    for x, ok in zip(v, eligible):
        if ok and not (front <= x).all(axis=1).any():  # x is not weakly dominated: it adds volume
            front = np.vstack([front[~(x <= front).all(axis=1)], x])
            hv = _hv_min(front, ref)
        curve.append(hv)
    return pd.DataFrame({"n_trials": np.arange(1, len(df) + 1), "hypervolume": curve})
