"""Ablation effects (Δ vs the baseline, mean ± 95% CI over seeds) and cost attribution (what each
design axis adds to a candidate's cost)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from nas.errors import UserError

if TYPE_CHECKING:
    from nas.space.candidate import Candidate

from nas.campaign.table import plain
from nas.report.edf import _sort_key, _stage_columns
from nas.report.pareto import _numeric, _ok
from nas.vocab import COLUMNS, COST_COLUMNS

__all__ = ["ABLATION_METRICS", "ablation_effects", "cost_attribution"]


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
    a column of the table but a measured column of the vocabulary (e.g. latency never measured)
    yields NaN; any other name (a typo) is a UserError listing the table's numeric columns.
    """
    _require_ablation(df)
    for m in metrics:
        if m not in df.columns and m not in COLUMNS:
            _numeric(df, m, what="metric")  # raises: names the column and the known ones
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
    return plain(raw)


def _baseline_value(row: pd.Series, axis: str) -> Any:
    """The baseline's own value of an ablation axis, or None when the row cannot tell: from
    ``arch.<axis>`` / ``param.<axis>``; ``stage.<name>`` when every stage has the same value; a
    per-stage list field (``depths``) as the list; ``width`` when widths double per stage."""
    for col in (f"arch.{axis}", f"param.{axis}", axis):  # axis: a pretrain./train. column
        if col in row.index and plain(row.get(col)) is not None:
            return _decode(row[col])
    from nas.space.candidate import STAGE_FIELDS

    name = STAGE_FIELDS.get(axis) or {"width": "width"}.get(axis) or axis.removeprefix("stage.")
    per_stage = [plain(row[c]) for c in _stage_columns(row.index, name)]
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
    effects = effects[~effects["is_baseline"].astype(bool)]
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
    from nas.measure.cost import analytic_cost

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
    from nas.space.candidate import ATTENTION_MIXERS, Candidate

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
