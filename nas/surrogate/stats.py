"""The replay's statistics over seeds: the mean and 95% band of a per-trial curve, and the trial
count from which a sampler beats random with confidence.

* Band: the 95% t-interval of the mean over the seeds that have a value at that trial
  (``mean +- t(0.975, n-1) * sd / sqrt(n)``); none with fewer than two seeds.
* Beats random from trial t: the first trial count t such that, at t and at every later trial
  count of the replay, the 95% Welch interval of ``mean(sampler) - mean(random)`` lies wholly
  above 0 (seeds are independent runs, so the two samples are unpaired). None when that never
  holds within the budget.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["beats_random", "curve_bands", "matrix"]


def matrix(table: pd.DataFrame, sampler: str, column: str) -> np.ndarray:
    """(seeds, trials) values of ``column`` for one sampler (NaN where a run has none)."""
    runs = table[table["sampler"] == sampler].pivot(index="seed", columns="trial", values=column)
    return runs.sort_index(axis=1).to_numpy(float)


def _t(df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def _band(v: np.ndarray) -> tuple[float, float, float, int]:
    """(mean, lo, hi, n) of the finite values of ``v``."""
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan, len(v)
    half = _t(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return mean, mean - half, mean + half, len(v)


def curve_bands(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per sampler and trial count: ``mean``, ``lo``, ``hi`` (95% band of the mean), ``n``."""
    rows = []
    for sampler in dict.fromkeys(table["sampler"]):
        m = matrix(table, sampler, column)
        for j in range(m.shape[1]):
            mean, lo, hi, n = _band(m[:, j])
            rows.append(
                {
                    "sampler": sampler,
                    "trial": j + 1,
                    "metric": column,
                    "mean": mean,
                    "lo": lo,
                    "hi": hi,
                    "n": n,
                }
            )
    return pd.DataFrame(rows)


def welch_lower(a: np.ndarray, b: np.ndarray) -> float:
    """Lower end of the 95% Welch interval of ``mean(a) - mean(b)`` (finite values; NaN with
    fewer than two of either)."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return diff
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return diff - _t(df) * se


def beats_random(table: pd.DataFrame, column: str, *, larger_is_better: bool = True) -> dict:
    """``{sampler: first trial count from which it beats random with confidence, or None}``
    (module docstring) for every sampler but random; empty without a random replay."""
    samplers = list(dict.fromkeys(table["sampler"]))
    if "random" not in samplers:
        return {}
    sign = 1.0 if larger_is_better else -1.0
    base = sign * matrix(table, "random", column)
    out = {}
    for sampler in samplers:
        if sampler == "random":
            continue
        m = sign * matrix(table, sampler, column)
        above = [welch_lower(m[:, j], base[:, j]) > 0 for j in range(m.shape[1])]
        first = None
        for j in range(len(above) - 1, -1, -1):  # the last run of trial counts that stay above
            if not above[j]:
                break
            first = j + 1
        out[sampler] = first
    return out
