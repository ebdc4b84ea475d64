"""The report's figures: one function per plot, drawing data that ``nas.report.render`` computed
(matplotlib, Agg backend, imported lazily); each returns a captioned ``Figure`` with PNG bytes."""

from __future__ import annotations

import io
import json

import numpy as np

from nas.report.document import Figure, label


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (6.4, 4.2)):
    """(figure, axes): one axes by default, else a (rows, cols) array of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=size, squeeze=rows * cols == 1)


def latency_interval(rows, x: str):
    """(2, n) error-bar lengths of ``x`` from the confidence interval each row carries
    (``latency_ci_low_ms``/``latency_ci_high_ms``, the interval of the median latency), or None
    when ``x`` is not the median latency or no row has its interval; 0 where a row has none."""
    cols = ("latency_ci_low_ms", "latency_ci_high_ms")
    if x != "latency_ms_p50" or not all(c in rows for c in cols) or not len(rows):
        return None
    low, high = (rows[c].to_numpy(float) for c in cols)
    if not np.isfinite(low).any():
        return None
    mid = rows[x].to_numpy(float)
    lo, hi = np.nan_to_num(mid - low), np.nan_to_num(high - mid)
    return np.vstack([np.clip(lo, 0, None), np.clip(hi, 0, None)])


def seed_spread(df, rows, y: str):
    """(2, n) error-bar lengths of ``y``: each row's distance to the lowest and highest ``y`` of
    the finished rows of the same candidate (its other seeds), or None when no candidate of
    ``rows`` ran with more than one seed."""
    if "candidate_id" not in df or not len(rows):
        return None
    ok = df[(df["status"] == "ok") & df[y].notna()] if "status" in df else df[df[y].notna()]
    groups = ok.groupby("candidate_id")[y]
    lo, hi, n = groups.min(), groups.max(), groups.size()
    ids = rows["candidate_id"]
    if not (ids.map(n).fillna(0) > 1).any():
        return None
    value = rows[y].to_numpy(float)
    down = np.nan_to_num(value - ids.map(lo).to_numpy(float))
    up = np.nan_to_num(ids.map(hi).to_numpy(float) - value)
    return np.vstack([np.clip(down, 0, None), np.clip(up, 0, None)])


def plot_pareto(df, result, x: str, objectives) -> Figure:
    y = next((c for c, s in objectives.items() if s == "max"), "val_acc")
    fig, ax = _figure(size=(5.6, 3.7))
    eligible = df[result.eligible]
    others = df[~result.eligible & df[x].notna()] if x in df else df.iloc[:0]
    xerr, yerr = latency_interval(eligible, x), seed_spread(df, eligible, y)
    ax.errorbar(
        eligible[x], eligible[y], xerr=xerr, yerr=yerr, fmt="o", ms=4, color="tab:blue",
        alpha=0.6, ecolor="0.6", elinewidth=0.8, capsize=2, label="finished",
    )  # fmt: skip
    if len(others):  # not trained (infeasible, failed): no accuracy, drawn on the floor
        floor = float(np.nanmin(eligible[y])) if len(eligible) else 0.0
        ax.scatter(
            others[x], [floor] * len(others), marker="x", color="0.6", label="infeasible / failed"
        )
    front = result.front.sort_values(x)
    if x in objectives:
        ax.plot(front[x], front[y], "-o", color="tab:red", ms=6, label="Pareto front")
    else:
        ax.scatter(front[x], front[y], s=50, color="tab:red", label="Pareto front")
    knees = df.loc[[k for k in result.knees if k in df.index]]
    ax.scatter(knees[x], knees[y], s=160, facecolors="none", edgecolors="k", label="knee")
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    bars = []
    xs = eligible[x].to_numpy(float)
    xs = xs[np.isfinite(xs)]
    if len(xs) and xs.min() > 0 and xs.max() > 10 * xs.min():  # a few slow outliers would
        ax.set_xscale("log")  # squeeze the front against the axis
        bars.append("log scale")
    if xerr is not None:
        bars.append("horizontal bars: the 95% interval of each median latency")
    if yerr is not None:
        bars.append(f"vertical bars: the range of {y} over the candidate's seeds")
    caption = (
        f"{label(y)} vs {label(x)} for every finished trial; red: the Pareto front over "
        f"{', '.join(objectives)}; circled: knee point; grey crosses: trials that were not "
        "trained (infeasible or failed), placed at the lowest accuracy"
        + ("; " + "; ".join(bars) if bars else "")
        + "."
    )
    return Figure(f"pareto_{x}", caption, _png(fig))


def plot_hypervolume(curve, objectives) -> Figure:
    fig, ax = _figure()
    ax.step(curve["n_trials"], curve["hypervolume"], where="post")
    ax.set_xlabel("trials finished (in finish order)")
    ax.set_ylabel("hypervolume (product of objective units)")
    ax.grid(alpha=0.3)
    caption = (
        f"Hypervolume of the Pareto front over {', '.join(objectives)} as trials finish, "
        "against a fixed reference point (the worst values seen, widened by 10%)."
    )
    return Figure("hypervolume", caption, _png(fig))


# an axis is ranked by its KS distance only when every value has at least this many models
EDF_MIN_GROUP = 10


def plot_edf(axis: str, res) -> Figure:
    fig, ax = _figure()
    frame = res.to_frame()
    name = axis.removeprefix("param.")
    smallest = min(res.n.values()) if res.n else 0
    for value, part in frame.groupby("value", sort=True):
        n = res.n.get(value, len(part))
        line = ax.step(part["x"], part["F"], where="post", label=f"{value} (n={n})")[0]
        ax.fill_between(
            part["x"], part["lo"], part["hi"], step="post", alpha=0.15, color=line.get_color()
        )
    ax.set_xlabel("error = 1 - validation accuracy (fraction)")
    ax.set_ylabel("cumulative fraction of models")
    ax.set_ylim(0, 1.02)
    ax.legend(title=name, fontsize=8)
    ax.grid(alpha=0.3)
    ks = max_ks(res)
    caption = (
        f"Error EDF of the surveyed models per value of {name} (higher and further left is "
        f"better; n models per value in the legend)"
    )
    if smallest < EDF_MIN_GROUP:
        warning = f"too few models to conclude: smallest group n={smallest} < {EDF_MIN_GROUP}"
        ax.set_title(warning, color="tab:red", fontsize=9)
        caption += f". WARNING: {warning}; not ranked (KS distance {ks:.2f} is not evidence)."
    else:
        caption += f"; largest pairwise KS distance {ks:.2f}."
    return Figure(f"edf_{name}", caption, _png(fig))


def plot_ablation(effects, metric: str) -> Figure:
    fig, ax = _figure()
    names = [f"{a}={v}" for a, v in zip(effects["axis"], effects["value"])]
    ci = effects.get(f"ci_{metric}")
    yerr = None if ci is None else np.nan_to_num(ci.to_numpy(float))
    ax.barh(names, effects[f"d_{metric}"], xerr=yerr, color="tab:blue", alpha=0.7, capsize=3)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(f"difference to the baseline: {label(metric)}")
    ax.set_ylabel("axis = value")
    ax.grid(alpha=0.3, axis="x")
    caption = (
        f"Change of {label(metric)} when one axis takes the value shown (mean ± 95% CI over seeds)."
    )
    return Figure(f"ablation_{metric}", caption, _png(fig))


# the curves of a larger front get no legend: it would not fit and take seconds to lay out
CURVES_LEGEND_MAX = 20


def plot_curves(front) -> Figure:
    fig, ax = _figure()
    legend = len(front) <= CURVES_LEGEND_MAX
    for _, row in front.iterrows():
        history = row.get("history")
        history = json.loads(history) if isinstance(history, str) else history
        if not history:
            continue
        epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
        name = row["trial_id"] if legend else None
        ax.plot(epochs, [h.get("val_acc") for h in history], "-o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label("val_acc"))
    if legend:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    caption = "Validation accuracy after every epoch for each Pareto-front member."
    if not legend:
        caption += (
            f" {len(front)} members: no legend above {CURVES_LEGEND_MAX} (trial ids in pareto.csv)."
        )
    return Figure("curves_front", caption, _png(fig))


# ---------------------------------------------------------------------- write


def max_ks(res) -> float:
    """The largest pairwise KS distance between the axis values of an EDF."""
    return float(res.ks["ks"].max()) if len(res.ks) else 0.0
