"""Report sections of the ``measure:`` columns and of funnel campaigns.

* Zero-cost proxies: how well each ranks the trained candidates by validation accuracy (Kendall
  tau, Spearman rho), beside the two baselines every proxy must beat: parameters and MACs.
* ERF: the high-contribution area ratios per design-axis value, and the contribution maps of the
  Pareto front.
* Funnel: what the pre-screen cost, what it kept and what it left out.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from nas.report.document import Figure, Section, label
from nas.report.plots import _figure, _png
from nas.vocab import ERF_COLUMNS, PROXIES

__all__ = ["erf_section", "funnel_section", "proxy_section", "proxy_table"]

BASELINES = ("params_m", "macs_m")
MIN_PROXY_ROWS = 5  # fewer trained rows give no rank correlation worth a line
MAX_MAPS = 8


def _trained(df: pd.DataFrame) -> pd.DataFrame:
    if not len(df) or "val_acc" not in df:
        return df.iloc[:0]
    return df[(df["status"] == "ok") & df["val_acc"].notna()]


def proxy_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per proxy (and baseline) column: n, Kendall tau (with its two-sided p-value) and Spearman
    rho against val_acc over the trained rows with a finite value, and whether the proxy ranks
    better than both baselines: a proxy is read "larger is better", so its tau must exceed the
    baselines' |tau| (a cost ranks in whichever direction fits, e.g. ``-macs_m``)."""
    from scipy.stats import kendalltau, spearmanr

    ok = _trained(df)
    rows = []
    for col in (*PROXIES, *BASELINES):
        if col not in ok:
            continue
        x = pd.to_numeric(ok[col], errors="coerce")
        keep = np.isfinite(x)
        if keep.sum() < MIN_PROXY_ROWS:
            continue
        acc = ok.loc[keep, "val_acc"].to_numpy(float)
        tau = rho = p = math.nan  # a constant column ranks nothing
        if np.ptp(x[keep]) > 0 and np.ptp(acc) > 0:
            tau, p = kendalltau(x[keep], acc)
            rho = spearmanr(x[keep], acc).statistic
        rows.append({"measure": col, "kind": "baseline" if col in BASELINES else "proxy",
                     "n": int(keep.sum()), "kendall_tau": tau, "tau_p_value": p,
                     "spearman_rho": rho})  # fmt: skip
    columns = ["measure", "kind", "n", "kendall_tau", "tau_p_value", "spearman_rho"]
    table = pd.DataFrame(rows, columns=columns)
    base = table.loc[table["kind"] == "baseline", "kendall_tau"].dropna().abs()
    bar = base.max() if len(base) else -math.inf
    table["beats_baselines"] = [
        (k == "proxy" and t > bar) if np.isfinite(t) else False
        for k, t in zip(table["kind"], table["kendall_tau"])
    ]
    return table


def proxy_section(df: pd.DataFrame) -> Section:
    section = Section("Zero-cost proxies vs accuracy")
    table = proxy_table(df) if len(df) else pd.DataFrame()
    if not len(table) or not (table["kind"] == "proxy").any():
        section.unavailable = (
            f"needs at least {MIN_PROXY_ROWS} trained trials with zero-cost proxies "
            "(the measure: section's proxies, on by default)"
        )
        return section
    section.table = table
    beat = table.loc[table["beats_baselines"], "measure"].tolist()
    funnel = "screen_kept" in df and (df["status"] == "screened").any()
    section.text = (
        "Rank correlation of each proxy (at initialisation, one batch) with the validation "
        "accuracy of the trained trials; parameters and MACs are the baselines a proxy must beat "
        "to be worth its cost. "
        + (f"Better than both here: {', '.join(beat)}. " if beat else "None beats both here. ")
        + "A proxy is read larger-is-better, so it must beat the baselines' |tau| (a cost may "
        "rank either way). With n models, |tau| below about 1.3 / sqrt(n) (0.24 at n = 32) is "
        "within noise (5%, two-sided): tau_p_value is the test of tau = 0."
        + (
            " This is a funnel campaign: the trained trials were selected by the screen, so the "
            "correlations are over a range-restricted sample."
            if funnel
            else ""
        )
    )
    ok = _trained(df)
    for col in table["measure"]:
        section.figures.append(_proxy_scatter(ok, col, table.set_index("measure").loc[col]))
    return section


def _proxy_scatter(ok: pd.DataFrame, col: str, stats) -> Figure:
    fig, ax = _figure()
    x = pd.to_numeric(ok[col], errors="coerce")
    keep = np.isfinite(x)
    ax.scatter(x[keep], ok.loc[keep, "val_acc"], s=22, alpha=0.7)
    positive = (x[keep] > 0).all()
    if positive and x[keep].max() > 100 * x[keep].min():
        ax.set_xscale("log")
    ax.set_xlabel(label(col) if col in BASELINES else f"{col} at init (score)")
    ax.set_ylabel(label("val_acc"))
    ax.grid(alpha=0.3)
    caption = (
        f"{col} vs validation accuracy, {int(stats['n'])} trained trials: Kendall tau "
        f"{stats['kendall_tau']:.3f}, Spearman rho {stats['spearman_rho']:.3f}"
        + (" (log x axis)" if ax.get_xscale() == "log" else "")
        + "."
    )
    return Figure(f"proxy_{col}", caption, _png(fig))


def _erf_axes(ok: pd.DataFrame) -> list[str]:
    cols = [c for c in ok.columns if c.startswith("param.")] or [
        c for c in ok.columns if c.startswith("arch.")
    ]
    axes = []
    for c in cols:
        values = ok[c].dropna().astype(str)
        if 2 <= values.nunique() <= 12:
            axes.append(c)
    return axes


def erf_section(df: pd.DataFrame, front: pd.DataFrame) -> Section:
    section = Section("Effective receptive field")
    ok = _trained(df)
    if "erf_r20" not in ok or not ok["erf_r20"].notna().any():
        section.unavailable = "no trained trial has an ERF (turn it on with measure: {erf: true})"
        return section
    ok = ok[ok["erf_r20"].notna()]
    parts = []
    for axis in _erf_axes(ok):
        g = ok.groupby(ok[axis].astype(str))[list(ERF_COLUMNS)]
        t = g.mean().reset_index().rename(columns={axis: "value"})
        t.insert(0, "axis", axis)
        t.insert(2, "n", g.size().to_numpy())
        parts.append(t)
    if parts:
        section.table = pd.concat(parts, ignore_index=True)
    images = int(ok["erf_images"].iloc[0]) if "erf_images" in ok else None
    section.text = (
        f"ERF of {len(ok)} trained networks on {images} validation images each (RepLKNet, sec. "
        "5): erf_r<t> is the area of the smallest centred square holding t% of the "
        "contribution, over the input area (smaller: a more concentrated ERF; a large-kernel "
        "network spreads it wider). Mean per design-axis value."
    )
    maps = front[front["erf_map"].notna()] if "erf_map" in front else front.iloc[:0]
    if len(maps):
        section.figures.append(_erf_maps(maps.head(MAX_MAPS)))
    return section


def _erf_maps(rows: pd.DataFrame) -> Figure:
    from nas.measure.erf import log_scaled

    cols = min(4, len(rows))
    lines = -(-len(rows) // cols)
    fig, axes = _figure(lines, cols, size=(2.2 * cols, 2.4 * lines))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes[len(rows) :]:
        ax.set_axis_off()  # the grid's unused cells
    for ax, (_, row) in zip(axes, rows.iterrows()):
        cells = row["erf_map"]  # a JSON string in the table (lists in a fresh row)
        cells = json.loads(cells) if isinstance(cells, str) else cells
        ax.imshow(log_scaled(np.array(cells, dtype=float)), cmap="viridis", vmin=0, vmax=3)
        ax.set_title(f"{row['trial_id']}\nr20={row['erf_r20']:.3f}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    caption = (
        f"ERF contribution maps of {len(rows)} Pareto-front trials (input pixels, averaged to "
        "at most 32 a side), log10(1 + 1000 x / max): 0 (none) to 3 (the maximum)."
    )
    return Figure("erf_front", caption, _png(fig))


def funnel_section(df: pd.DataFrame) -> Section:
    section = Section("Funnel (pre-screen)")
    if not len(df) or "screen_score" not in df:
        section.unavailable = "not a funnel campaign (nas survey|search --prescreen N --keep K)"
        return section
    screened = df[df["status"] == "screened"]
    kept = df[df["screen_score"].notna() & (df["status"] != "screened")]
    by = str(df["screen_by"].dropna().iloc[0])
    screen_s = pd.to_numeric(df["screen_s"], errors="coerce").sum()
    train_s = pd.to_numeric(kept.get("wall_s"), errors="coerce").sum() if len(kept) else 0.0
    section.text = (
        f"Screened {len(screened) + len(kept)} candidates by {by} (larger is better) in "
        f"{screen_s:.1f} s of task time; trained the {len(kept)} best ({train_s:.1f} s of trial "
        f"time) and left out {len(screened)} (status screened, never trained: what they would "
        "have reached is not known). Scores of the left-out candidates: "
        + _spread(screened["screen_score"])
        + "."
    )
    cols = ["trial_id", "candidate_id", "screen_rank", "screen_score", "status", "val_acc"]
    section.table = kept.sort_values("screen_rank")[[c for c in cols if c in kept]]
    return section


def _spread(x: pd.Series) -> str:
    x = pd.to_numeric(x, errors="coerce").dropna()
    if not len(x):
        return "none"
    return f"min {x.min():.4g}, median {x.median():.4g}, max {x.max():.4g}"
