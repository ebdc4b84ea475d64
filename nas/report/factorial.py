"""Factorial ablations (``nas ablate --factorial``): the mean of every cell over seeds, and the
effect of each axis inside every combination of the others (the question "does GRN matter with
and without pre-training" is the effect of ``grn`` at each ``pretrain.method``).

A factorial row's ``axis_value`` is a JSON object ``{axis: value}``; the cell equal to the
baseline is the baseline's rows (it is not planned twice), its values read from the row."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from nas.errors import UserError
from nas.report.ablation import _baseline_value, _difference, _per_seed, _require_ablation

__all__ = ["factorial_cells", "factorial_effects"]


def _cells(df: pd.DataFrame) -> tuple[list[str], list[tuple[tuple, pd.DataFrame]]]:
    """(axes, [(values in axes order, rows)]) of a factorial table; the baseline is its cell."""
    _require_ablation(df)
    rows = df[df["axis"] == "factorial"]
    points = [(json.loads(v), part) for v, part in rows.groupby("axis_value", sort=False)]
    points = [(p, part) for p, part in points if isinstance(p, dict)]
    if not points:
        raise UserError(
            "factorial effects need rows of nas ablate --factorial (axis 'factorial' with an "
            "{axis: value} axis_value); this table has none"
        )
    axes = list(points[0][0])
    cells = [(tuple(p[a] for a in axes), part) for p, part in points]
    base = df[df["axis"] == "baseline"]
    if len(base):
        own = tuple(_baseline_value(base.iloc[0], a) for a in axes)
        if None not in own and all(values != own for values, _ in cells):
            cells.append((own, base))
    return axes, cells


def factorial_cells(df: pd.DataFrame, metrics: Sequence[str] = ("val_acc",)) -> pd.DataFrame:
    """One row per cell: the axes' values, ``n`` (seeds), per metric the mean over seeds and the
    half-width of its 95% t interval (``ci_<metric>``; NaN below two seeds)."""
    from scipy.stats import t

    axes, cells = _cells(df)
    out = []
    for values, part in cells:
        row: dict[str, Any] = dict(zip(axes, values)) | {"n": part["seed"].nunique()}
        for m in metrics:
            v = _per_seed(part, m)
            half = (
                t.ppf(0.975, len(v) - 1) * v.std() / math.sqrt(len(v)) if len(v) > 1 else math.nan
            )
            row |= {m: v.mean() if len(v) else math.nan, f"ci_{m}": half}
        out.append(row)
    return pd.DataFrame(out).sort_values(axes, key=lambda s: s.map(str)).reset_index(drop=True)


def factorial_effects(df: pd.DataFrame, metrics: Sequence[str] = ("val_acc",)) -> pd.DataFrame:
    """The effect of changing one axis with the others held at each of their combinations: rows
    ``axis, change, given`` (the other axes' values), ``n``, and per metric ``d_<metric>`` (mean
    difference over seeds, paired by seed when both cells have the same seeds) and
    ``ci_<metric>``. The reference value of an axis is the baseline's (else its first value)."""
    axes, cells = _cells(df)
    by_values = dict(cells)
    reference = _reference(df, axes, cells)
    rows = []
    for i, axis in enumerate(axes):
        for values, part in cells:
            if values[i] == reference[i]:
                continue
            ref_values = values[:i] + (reference[i],) + values[i + 1 :]
            ref = by_values.get(ref_values)
            if ref is None:
                continue
            given = ", ".join(f"{a}={v}" for a, v in zip(axes, values) if a != axis)
            row = {"axis": axis, "change": f"{reference[i]} -> {values[i]}", "given": given}
            row["n"] = min(part["seed"].nunique(), ref["seed"].nunique())
            for m in metrics:
                row[f"d_{m}"], row[f"ci_{m}"] = _difference(_per_seed(part, m), _per_seed(ref, m))
            rows.append(row)
    return pd.DataFrame(rows)


def _reference(df: pd.DataFrame, axes: list[str], cells) -> tuple:
    base = df[df["axis"] == "baseline"]
    own = [_baseline_value(base.iloc[0], a) if len(base) else None for a in axes]
    first = cells[0][0]
    return tuple(first[i] if v is None else v for i, v in enumerate(own))
