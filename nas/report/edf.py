"""Design-space error EDFs (Radosavovic et al. 2019/2020): per axis value, complexity-normalised
by reweighting complexity bins, with bootstrap bands and two-sample KS distances."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nas.campaign.table import plain
from nas.errors import UserError, did_you_mean
from nas.report.pareto import _numeric, _ok

__all__ = ["EDFResult", "edf"]


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
    name, labels = _axisplains(df, by)
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
    modes = sorted({str(m) for m in df["mode"].dropna().unique()}) if "mode" in df.columns else []
    if set(modes) - {"survey"}:
        raise UserError(
            f"EDFs need a survey (a random sample of the design space); this table has mode "
            f"{', '.join(modes)}: search results are biased by the sampler, ablations are not a sample"
        )


def _sort_key(value: Any) -> tuple:
    if isinstance(value, (bool, int, float)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _stage_columns(columns: Iterable[str], name: str) -> list[str]:
    """``arch.stage.<i>.<name>`` columns in stage order."""
    pattern = re.compile(rf"arch\.stage\.(\d+)\.{re.escape(name)}")
    found = [(int(m[1]), c) for c in columns if (m := pattern.fullmatch(c))]
    return [c for _, c in sorted(found)]


def _axisplains(df: pd.DataFrame, by: str) -> tuple[str, pd.Series]:
    """(name, the group label of every row) for an EDF axis."""
    for col in (by, f"arch.{by}", f"param.{by}"):
        if col in df.columns:
            return col, df[col].map(plain)
    short = by.removeprefix("arch.")
    parts = short.split(".")
    cols = _stage_columns(df.columns, parts[1]) if len(parts) == 2 and parts[0] == "stage" else []
    if cols:
        per_stage = df[cols].map(plain)
        return short, per_stage.apply(lambda r: json.dumps([v for v in r if v is not None]), axis=1)
    axes = [
        c
        for c in df.columns
        if c.startswith(("arch.", "param.")) and df[c].map(plain).nunique(dropna=True) >= 2
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
    samples = np.empty((bootstrap, size))
    step = max(1, 2**16 // len(pos))  # resamples per block: ~64k models at a time stay in cache
    for s in range(0, bootstrap, step):
        block = idx[s : s + step]
        samples[s : s + step] = _edf_on_grid(pos[block], _weights(bin_of[block], allowed), size)
    alpha = (1.0 - level) / 2.0
    # NaN only where a resample kept no model of the common bins; without NaN, np.quantile gives
    # the same values as np.nanquantile, vectorised (nanquantile loops over the grid in Python)
    quantile = np.nanquantile if np.isnan(samples).any() else np.quantile
    lo, hi = quantile(samples, [alpha, 1.0 - alpha], axis=0)
    return lo, hi


def _ks_table(values: list, F: dict, samples: dict, *, weighted: bool) -> pd.DataFrame:
    from scipy.stats import ks_2samp

    rows = []
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            p = math.nan if weighted else float(ks_2samp(samples[a], samples[b]).pvalue)
            rows.append({"a": a, "b": b, "ks": float(np.max(np.abs(F[a] - F[b]))), "pvalue": p})
    return pd.DataFrame(rows, columns=["a", "b", "ks", "pvalue"])
