"""Analysis of a campaign table: Pareto fronts, hypervolume, design-space EDFs, ablation effects
and cost attribution. Pure functions from the trial DataFrame to data (DataFrames, dataclasses);
drawing and files live in ``nas.report_render`` (compute, then render).

References: non-dominated sorting (Deb et al., NSGA-II, 2002); exact hypervolume by slicing
objectives (HSO, While et al., 2006); error EDFs with complexity normalisation (Radosavovic et al.,
"On Network Design Spaces for Visual Recognition", 2019; "Designing Network Design Spaces", 2020).
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nas.errors import UserError, did_you_mean

if TYPE_CHECKING:
    from nas.candidate import Candidate

__all__ = [
    "COST_COLUMNS",
    "EDFResult",
    "ParetoResult",
    "ablation_effects",
    "apply_budgets",
    "cost_attribution",
    "edf",
    "hypervolume",
    "hypervolume_over_trials",
    "pareto_front",
    "pareto_ranks",
    "parse_budget",
    "parse_objectives",
]

SENSES = ("max", "min")
# Measured before training: infeasible (never trained) rows have them too.
COST_COLUMNS = frozenset(
    {
        "params_m",
        "params_m_deploy",
        "macs_m",
        "macs_m_deploy",
        "train_saved_mb",
        "train_peak_mb",
        "latency_ms_p50",
        "latency_ms_p90",
    }
)
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


def _dominance(v: np.ndarray) -> np.ndarray:
    """``d[i, j]``: row i dominates row j (minimisation); computed in row chunks to bound memory."""
    n, k = v.shape
    out = np.empty((n, n), dtype=bool)
    step = max(1, 4_000_000 // max(n * k, 1))
    for s in range(0, n, step):
        a = v[s : s + step, None, :]
        out[s : s + step] = (a <= v[None]).all(-1) & (a < v[None]).any(-1)
    return out


def pareto_ranks(values: np.ndarray, senses: Sequence[str]) -> np.ndarray:
    """Non-dominated sorting rank of each row of finite ``values`` (n, k): 0 = non-dominated,
    1 = non-dominated once rank 0 is removed, ... Identical rows do not dominate each other."""
    dom = _dominance(_minimise(values, senses))
    count = dom.sum(axis=0)  # how many rows dominate each row
    ranks = np.full(len(dom), -1, dtype=int)
    rank = 0
    while (ranks < 0).any():
        front = (ranks < 0) & (count == 0)
        ranks[front] = rank
        count = count - dom[front].sum(axis=0)
        rank += 1
    return ranks


def hypervolume(points: np.ndarray, reference: Sequence[float], senses: Sequence[str]) -> float:
    """Exact volume dominated by ``points`` (n, k) and bounded by ``reference``, in the objectives'
    own units. Points not strictly better than the reference in every objective add nothing."""
    ref = _minimise(np.asarray(reference, dtype=float)[None, :], senses)[0]
    return _hv_min(_minimise(np.asarray(points, dtype=float).reshape(-1, len(senses)), senses), ref)


def _hv_min(p: np.ndarray, ref: np.ndarray) -> float:
    p = p[(p < ref).all(axis=1)]
    return float(_hv(p, ref)) if len(p) else 0.0


def _hv(p: np.ndarray, ref: np.ndarray) -> float:
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
    return sum(d * _hv(p[: i + 1, :-1], ref[:-1]) for i, d in enumerate(depth) if d > 0)


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
    """Positions of the knee point(s) of a front given as minimisation values (m, k), each
    objective normalised to [0, 1] over the front.

    2 objectives: the point(s) farthest from the line through the two extreme points, on the side
    of the ideal point (none when no point lies on that side, e.g. a straight or concave front).
    3+ objectives: the point(s) nearest to the ideal point (simpler than the hyperplane through
    the extremes, and the same point on symmetric fronts). A one-point front is its own knee.
    """
    span = np.ptp(v, axis=0)
    u = (v - v.min(axis=0)) / np.where(span > 0, span, 1.0)
    if not span.any():
        return np.arange(len(v))
    if v.shape[1] == 2:  # extremes are (0, 1) and (1, 0): the line u0 + u1 = 1
        score = (1.0 - u.sum(axis=1)) / math.sqrt(2.0)
        if score.max() <= 1e-12:
            return np.arange(0)
    else:
        score = -np.linalg.norm(u, axis=1)
    return np.flatnonzero(score >= score.max() - 1e-12)


def hypervolume_over_trials(
    df: pd.DataFrame,
    objectives: Mapping[str, str] | str | Sequence[str],
    reference: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Hypervolume of the front of the eligible rows seen so far, after each trial in finish order
    (``finished_at`` when the table has it, else table order), against one fixed reference (default:
    that of the whole table). Columns ``n_trials``, ``hypervolume``; non-decreasing."""
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


# ---------------------------------------------------------------------- design-space EDFs
@dataclass
class EDFResult:
    """Error EDFs of one design axis, one curve per axis value, on a common grid.

    Attributes:
        by: the column split by, or ``stage.<name>`` for the tuple of per-stage values.
        metric, error: the table column; ``error`` means the curves are of ``1 - metric``.
        normalize: None, ``"macs"`` or ``"params"`` (complexity-normalised weights).
        values: the axis values (groups with at least 2 models), sorted.
        x: the grid: every distinct error of the models in those groups, ascending.
        F, lo, hi: per value, the (weighted) fraction of its models with error <= x, and the
            percentile bootstrap band at ``level`` (NaN when ``bootstrap=0``).
        n: models per value; dropped: per value, models given weight 0 by the normalisation.
        ks: pairwise columns ``a, b, ks`` (sup |F_a - F_b| on the grid) and ``pvalue``
            (two-sample KS test; NaN when weighted).
    """

    by: str
    metric: str
    error: bool
    normalize: str | None
    level: float
    values: list
    x: np.ndarray
    F: dict[Any, np.ndarray]
    lo: dict[Any, np.ndarray]
    hi: dict[Any, np.ndarray]
    n: dict[Any, int]
    dropped: dict[Any, int]
    ks: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """Long form for drawing: columns ``value, x, F, lo, hi``."""
        parts = [
            pd.DataFrame(
                {
                    "value": [v] * len(self.x),
                    "x": self.x,
                    "F": self.F[v],
                    "lo": self.lo[v],
                    "hi": self.hi[v],
                }
            )
            for v in self.values
        ]
        return pd.concat(parts, ignore_index=True)


_COMPLEXITY = {"macs": "macs_m", "params": "params_m"}


def edf(
    df: pd.DataFrame,
    by: str,
    metric: str = "val_acc",
    *,
    error: bool = True,
    normalize: str | None = None,
    bins: int = 10,
    bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> EDFResult:
    """Design-space error EDFs of a survey split by one axis (Radosavovic et al., 2019).

    ``by`` is a column, or a short name for ``arch.<by>`` / ``param.<by>``; ``stage.<name>``
    (without a stage index) groups by the tuple of per-stage values ``arch.stage.<i>.<name>``,
    labelled as a JSON list. Rows: status ok with a finite metric and a value for ``by``.
    ``normalize`` weights models so that every group has the same (uniform) distribution over
    ``bins`` equal-width bins of log complexity, using only bins populated by every group.
    Bootstrap bands resample each group's models with replacement (``bootstrap`` times, seeded),
    recomputing the weights per resample over the same common bins.
    """
    _require_survey(df)
    name, labels = _axis_labels(df, by)
    y = _numeric(df, metric, what="metric")
    y = 1.0 - y if error else y
    keep = (_ok(df) & np.isfinite(y) & labels.notna()).to_numpy(copy=True)
    counts = labels[keep].value_counts()
    values = sorted((v for v, c in counts.items() if c >= 2), key=_sort_key)
    if len(values) < 2:
        found = {v: int(c) for v, c in sorted(counts.items(), key=lambda t: _sort_key(t[0]))}
        raise UserError(
            f"EDF of {name!r}: need at least 2 values with >= 2 finished (status ok) rows with a "
            f"{metric} each; found {found or 'none'}"
        )
    keep &= labels.isin(values).to_numpy()
    y, group = y.to_numpy()[keep], labels.to_numpy()[keep]
    x = np.unique(y)
    pos = np.searchsorted(x, y)
    bin_of, allowed = _complexity_bins(df, keep, group, values, normalize, bins)
    rng = np.random.default_rng(seed)
    F, lo, hi, n, dropped = {}, {}, {}, {}, {}
    for v in values:
        g = group == v
        w = _weights(bin_of[g][None], allowed)
        F[v] = _edf_on_grid(pos[g][None], w, len(x))[0]
        lo[v], hi[v] = _band(pos[g], bin_of[g], allowed, len(x), rng, bootstrap, level)
        n[v], dropped[v] = int(g.sum()), int((w[0] == 0).sum())
    ks = _ks_table(values, F, {v: y[group == v] for v in values}, weighted=allowed is not None)
    return EDFResult(name, metric, error, normalize, level, values, x, F, lo, hi, n, dropped, ks)


def _require_survey(df: pd.DataFrame) -> None:
    modes = sorted({str(m) for m in df["mode"].dropna()}) if "mode" in df.columns else []
    if set(modes) - {"survey"}:
        raise UserError(
            f"EDFs need a survey (a random sample of the design space); this table has mode "
            f"{', '.join(modes)}: search results are biased by the sampler, ablations are not a sample"
        )


def _label(value: Any) -> Any:
    """A table cell as a plain hashable Python value; None for missing."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _sort_key(value: Any) -> tuple:
    if isinstance(value, (bool, int, float)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _stage_columns(columns: Iterable[str], name: str) -> list[str]:
    """``arch.stage.<i>.<name>`` columns in stage order."""
    pattern = re.compile(rf"arch\.stage\.(\d+)\.{re.escape(name)}")
    found = [(int(m[1]), c) for c in columns if (m := pattern.fullmatch(c))]
    return [c for _, c in sorted(found)]


def _axis_labels(df: pd.DataFrame, by: str) -> tuple[str, pd.Series]:
    """(name, the group label of every row) for an EDF axis."""
    for col in (by, f"arch.{by}", f"param.{by}"):
        if col in df.columns:
            return col, df[col].map(_label)
    short = by.removeprefix("arch.")
    parts = short.split(".")
    cols = _stage_columns(df.columns, parts[1]) if len(parts) == 2 and parts[0] == "stage" else []
    if cols:
        per_stage = df[cols].map(_label)
        return short, per_stage.apply(lambda r: json.dumps([v for v in r if v is not None]), axis=1)
    axes = [
        c
        for c in df.columns
        if c.startswith(("arch.", "param.")) and df[c].map(_label).nunique(dropna=True) >= 2
    ]
    raise UserError(
        f"EDF axis {by!r} is not a column of the table{did_you_mean(by, axes)}; "
        f"axes with >= 2 values: {', '.join(axes) or 'none'}"
    )


def _complexity_bins(
    df: pd.DataFrame,
    keep: np.ndarray,
    group: np.ndarray,
    values: list,
    normalize: str | None,
    bins: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Each kept model's log-complexity bin (-1 without a complexity) and the bins every group
    populates (None: no normalisation)."""
    if normalize is None:
        return np.zeros(len(group), dtype=int), None
    if normalize not in _COMPLEXITY:
        raise UserError(
            f"normalize {normalize!r} is not allowed; expected None, 'macs' or 'params'"
        )
    c = _numeric(df, _COMPLEXITY[normalize], what="complexity").to_numpy()[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_c = np.where(c > 0, np.log(c), np.nan)
    finite = np.isfinite(log_c)
    if not finite.any():
        raise UserError(
            f"normalize={normalize!r}: no finished row has a positive {_COMPLEXITY[normalize]}"
        )
    edges = np.linspace(log_c[finite].min(), log_c[finite].max(), bins + 1)
    bin_of = np.where(finite, np.digitize(np.nan_to_num(log_c), edges[1:-1]), -1)
    allowed = np.ones(bins, dtype=bool)
    for v in values:
        allowed &= np.isin(np.arange(bins), bin_of[group == v])
    if not allowed.any():
        raise UserError(
            f"normalize={normalize!r}: no {_COMPLEXITY[normalize]} bin (of {bins}) holds models of "
            "every value; use fewer bins or no normalisation"
        )
    return bin_of, allowed


def _weights(bin_of: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """Weights (samples, models) summing to 1 per sample: uniform, or 1/(models of the sample in
    the model's bin) for models in ``allowed`` bins and 0 for the others (NaN: no model left)."""
    if allowed is None:
        return np.full(bin_of.shape, 1.0 / bin_of.shape[1])
    use = (bin_of >= 0) & allowed[np.maximum(bin_of, 0)]
    rows = np.broadcast_to(np.arange(len(bin_of))[:, None], bin_of.shape)
    size = len(allowed)
    counts = np.bincount((rows * size + bin_of)[use], minlength=len(bin_of) * size)
    w = np.where(
        use, 1.0 / np.maximum(counts.reshape(-1, size)[rows, np.maximum(bin_of, 0)], 1), 0.0
    )
    with np.errstate(invalid="ignore"):
        return w / w.sum(axis=1, keepdims=True)


def _edf_on_grid(pos: np.ndarray, w: np.ndarray, size: int) -> np.ndarray:
    """F (samples, grid) from each model's grid position and weight (samples, models)."""
    rows = np.broadcast_to(np.arange(len(pos))[:, None], pos.shape)
    mass = np.bincount((rows * size + pos).ravel(), weights=w.ravel(), minlength=len(pos) * size)
    return np.cumsum(mass.reshape(len(pos), size), axis=1)


def _band(
    pos: np.ndarray,
    bin_of: np.ndarray,
    allowed: np.ndarray | None,
    size: int,
    rng: np.random.Generator,
    bootstrap: int,
    level: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap band of one group's EDF (models resampled with replacement)."""
    if bootstrap < 1:
        return np.full(size, np.nan), np.full(size, np.nan)
    idx = rng.integers(0, len(pos), size=(bootstrap, len(pos)))
    samples = _edf_on_grid(pos[idx], _weights(bin_of[idx], allowed), size)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(samples, [alpha, 1.0 - alpha], axis=0)
    return lo, hi


def _ks_table(values: list, F: dict, samples: dict, *, weighted: bool) -> pd.DataFrame:
    from scipy.stats import ks_2samp

    rows = []
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            p = math.nan if weighted else float(ks_2samp(samples[a], samples[b]).pvalue)
            rows.append({"a": a, "b": b, "ks": float(np.max(np.abs(F[a] - F[b]))), "pvalue": p})
    return pd.DataFrame(rows, columns=["a", "b", "ks", "pvalue"])


# ---------------------------------------------------------------------- ablations
ABLATION_METRICS = ("val_acc", "latency_ms_p50", "macs_m", "params_m", "train_saved_mb")


def ablation_effects(df: pd.DataFrame, metrics: Sequence[str] = ABLATION_METRICS) -> pd.DataFrame:
    """Effect of each one-factor ablation point against the baseline, over seeds.

    One row per (axis, value) of the one-factor rows (factorial rows are skipped: their effects
    are not one-factor differences), plus the baseline's own value of each axis when the table
    tells it (``is_baseline``, difference 0). Columns: ``axis, value`` (decoded from JSON),
    ``is_baseline``, ``n`` (seeds), and per metric: the mean ``<metric>``, ``baseline_<metric>``,
    ``d_<metric>`` (mean difference value - baseline), ``ci_<metric>`` (half-width of its 95%
    t interval: paired by seed when both sides have the same seeds, Welch otherwise; NaN below two
    seeds) and ``d_<metric>_pct`` (relative to the baseline mean, in percent). Accuracy-like
    metrics use ok rows only; costs (``COST_COLUMNS``) any row that has them. A metric that is not
    a column of the table (e.g. latency never measured) yields NaN.
    """
    _require_ablation(df)
    base = df[df["axis"] == "baseline"]
    if base.empty:
        raise UserError(
            "ablation table: no baseline rows (axis == 'baseline'); nothing to compare to"
        )
    baseline = {m: _per_seed(base, m) for m in metrics}
    rows = []
    one = df[df["axis"].notna() & ~df["axis"].isin(["baseline", "factorial"])]
    for axis in pd.unique(one["axis"]):
        points = [
            (_decode(raw), part)
            for raw, part in one[one["axis"] == axis].groupby(
                "axis_value", sort=False, dropna=False
            )
        ]
        own = _baseline_value(base.iloc[0], axis)
        if own is not None and all(v != own for v, _ in points):
            points.append((own, base))
        for value, part in sorted(points, key=lambda p: _sort_key(p[0])):
            rows.append(_effect_row(axis, value, part, part is base, baseline, metrics))
    columns = ["axis", "value", "is_baseline", "n"]
    for m in metrics:
        columns += [m, f"baseline_{m}", f"d_{m}", f"ci_{m}", f"d_{m}_pct"]
    return pd.DataFrame(rows, columns=columns)


def _require_ablation(df: pd.DataFrame) -> None:
    modes = sorted({str(m) for m in df["mode"].dropna()}) if "mode" in df.columns else []
    if {"axis", "axis_value", "seed"} - set(df.columns) or set(modes) - {"ablate"}:
        raise UserError(
            f"ablation effects need an ablate campaign table (columns axis, axis_value, seed); "
            f"this table has mode {', '.join(modes) or 'unknown'}"
        )


def _decode(raw: Any) -> Any:
    """An ``axis_value`` / list cell: JSON text -> value."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return _label(raw)


def _baseline_value(row: pd.Series, axis: str) -> Any:
    """The baseline's own value of an ablation axis, or None when the row cannot tell: from
    ``arch.<axis>`` / ``param.<axis>``; ``stage.<name>`` when every stage has the same value; a
    per-stage list field (``depths``) as the list; ``width`` when widths double per stage."""
    for col in (f"arch.{axis}", f"param.{axis}"):
        if _label(row.get(col)) is not None:
            return _decode(row[col])
    from nas.candidate import STAGE_FIELDS

    name = STAGE_FIELDS.get(axis) or {"width": "width"}.get(axis) or axis.removeprefix("stage.")
    per_stage = [_label(row[c]) for c in _stage_columns(row.index, name)]
    if not per_stage or None in per_stage:
        return None
    if axis in STAGE_FIELDS:
        return per_stage
    if axis == "width":
        w = per_stage[0]
        return w if per_stage == [w * 2**i for i in range(len(per_stage))] else None
    return per_stage[0] if axis.startswith("stage.") and len(set(per_stage)) == 1 else None


def _per_seed(rows: pd.DataFrame, metric: str) -> pd.Series:
    """Mean of ``metric`` per seed (ok rows only unless it is a cost), NaN seeds dropped."""
    values = _numeric(rows, metric, what="metric", missing_ok=True)
    if metric not in COST_COLUMNS:
        values = values.where(_ok(rows))
    return values.groupby(rows["seed"]).mean().dropna()


def _effect_row(
    axis: str,
    value: Any,
    rows: pd.DataFrame,
    is_baseline: bool,
    baseline: dict,
    metrics: Sequence[str],
) -> dict:
    out = {"axis": axis, "value": value, "is_baseline": is_baseline, "n": rows["seed"].nunique()}
    for m in metrics:
        b = baseline[m]
        v = b if is_baseline else _per_seed(rows, m)
        d, ci = (0.0, 0.0) if is_baseline and len(b) else _difference(v, b)
        b_mean = b.mean() if len(b) else math.nan
        out |= {
            m: v.mean() if len(v) else math.nan,
            f"baseline_{m}": b_mean,
            f"d_{m}": d,
            f"ci_{m}": ci,
            f"d_{m}_pct": 100.0 * d / abs(b_mean) if b_mean else math.nan,
        }
    return out


def _difference(v: pd.Series, b: pd.Series) -> tuple[float, float]:
    """Mean difference ``v - b`` of per-seed values and the half-width of its 95% t interval."""
    from scipy.stats import t

    if v.empty or b.empty:
        return math.nan, math.nan
    if set(v.index) == set(b.index):  # paired by seed
        diff = v - b
        ci = (
            t.ppf(0.975, len(diff) - 1) * diff.std() / math.sqrt(len(diff))
            if len(diff) > 1
            else math.nan
        )
        return float(diff.mean()), float(ci)
    d = float(v.mean() - b.mean())
    if len(v) < 2 or len(b) < 2:
        return d, math.nan
    sv, sb = v.var() / len(v), b.var() / len(b)
    if sv + sb == 0:
        return d, 0.0
    dof = (sv + sb) ** 2 / (sv**2 / (len(v) - 1) + sb**2 / (len(b) - 1))  # Welch-Satterthwaite
    return d, float(t.ppf(0.975, dof) * math.sqrt(sv + sb))


# ---------------------------------------------------------------------- cost attribution
def cost_attribution(
    df: pd.DataFrame | None = None, *, candidate: Candidate | None = None
) -> pd.DataFrame:
    """What each design axis adds to the cost, as rows ``axis, change, params_m, macs_m,
    params_pct, macs_pct`` (training form; plus ``latency_ms_p50, latency_pct`` from a table with
    latencies). ``change`` reads ``from -> to`` and the numbers are cost(to) - cost(from).

    From an ablate table: every one-factor point against the baseline (``from`` is the baseline's
    value, ``baseline`` when unknown); percentages of the baseline. From a candidate: each axis
    that applies, switched off, by exact analytic counts; percentages of the candidate's total:
    ``columns`` (RevCol: 1 column, no intermediate supervision), ``stage.kernel`` (every
    depthwise kernel 3; a re-param branch that would not be smaller is dropped with it),
    ``reparam`` (the training form against the deploy form of the same candidate), ``grn`` (off)
    and ``stage.mixer`` (dynamic/mixed attention -> static depthwise conv; kernel 3 where the
    stage had none). Axes interact, so the rows need not add up to the total.
    """
    if (df is None) == (candidate is None):
        raise UserError(
            "cost attribution needs either an ablate table or a candidate (one of them)"
        )
    return (
        _attribution_from_table(df) if candidate is None else _attribution_from_candidate(candidate)
    )


def _attribution_from_table(df: pd.DataFrame) -> pd.DataFrame:
    has_latency = _numeric(df, "latency_ms_p50", what="metric", missing_ok=True).notna().any()
    metrics = ["params_m", "macs_m"] + (["latency_ms_p50"] if has_latency else [])
    effects = ablation_effects(df, metrics)
    own = {r.axis: r.value for r in effects.itertuples() if r.is_baseline}
    effects = effects[~effects["is_baseline"]]
    out = pd.DataFrame(
        {
            "axis": effects["axis"],
            "change": [
                f"{own.get(a, 'baseline')} -> {v}"
                for a, v in zip(effects["axis"], effects["value"])
            ],
            "params_m": effects["d_params_m"],
            "macs_m": effects["d_macs_m"],
            "params_pct": effects["d_params_m_pct"],
            "macs_pct": effects["d_macs_m_pct"],
        }
    )
    if has_latency:
        out["latency_ms_p50"] = effects["d_latency_ms_p50"]
        out["latency_pct"] = effects["d_latency_ms_p50_pct"]
    return out.reset_index(drop=True)


def _attribution_from_candidate(c: Candidate) -> pd.DataFrame:
    from nas.cost import analytic_cost

    cost = analytic_cost(c)
    rows = []
    for axis, change, off in _switches(c, cost):
        if off is None:  # the re-param branch: training form against deploy form
            d_params, d_macs = (
                cost["params"] - cost["params_deploy"],
                cost["macs"] - cost["macs_deploy"],
            )
        else:
            base = analytic_cost(off)
            d_params, d_macs = cost["params"] - base["params"], cost["macs"] - base["macs"]
        rows.append(
            {
                "axis": axis,
                "change": change,
                "params_m": d_params / 1e6,
                "macs_m": d_macs / 1e6,
                "params_pct": 100.0 * d_params / cost["params"],
                "macs_pct": 100.0 * d_macs / cost["macs"],
            }
        )
    return pd.DataFrame(
        rows, columns=["axis", "change", "params_m", "macs_m", "params_pct", "macs_pct"]
    )


def _switches(c: Candidate, cost: Mapping[str, int]) -> list[tuple[str, str, Candidate | None]]:
    """(axis, change, the candidate with that axis off) for each axis that applies to ``c``
    (of analytic ``cost``); None stands for the deploy form of ``c`` itself."""
    from nas.candidate import ATTENTION_MIXERS, Candidate

    out: list[tuple[str, str, Candidate | None]] = []
    if c.macro == "revcol" and c.columns > 1:
        off = Candidate.from_params({"columns": 1, "inter_supervision": False}, base=c)
        out.append(("columns", f"1 -> {c.columns}", off))
    if any(k > 3 for k in c.kernels):
        kernels = [min(k, 3) for k in c.kernels]
        small = [s if s < k else 0 for s, k in zip(c.small_kernels, kernels)]
        off = Candidate.from_params({"kernels": kernels, "small_kernels": small}, base=c)
        out.append(("stage.kernel", f"{_seq(kernels)} -> {_seq(c.kernels)}", off))
    if (cost["params"], cost["macs"]) != (cost["params_deploy"], cost["macs_deploy"]):
        out.append(("reparam", "deploy -> training form", None))
    if c.grn:
        out.append(("grn", "False -> True", Candidate.from_params({"grn": False}, base=c)))
    if any(m in ATTENTION_MIXERS for m in c.mixers):
        mixers = ["static" if m in ATTENTION_MIXERS else m for m in c.mixers]
        kernels = [(k or 3) if m in ATTENTION_MIXERS else k for m, k in zip(c.mixers, c.kernels)]
        off = Candidate.from_params({"mixers": mixers, "kernels": kernels}, base=c)
        out.append(("stage.mixer", f"{_seq(mixers)} -> {_seq(c.mixers)}", off))
    return out


def _seq(values: Iterable[Any]) -> str:
    return "[" + ", ".join(map(str, values)) + "]"
