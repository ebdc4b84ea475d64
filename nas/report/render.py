"""``nas report``: render a campaign's analysis (``nas.report``) as HTML, Markdown, CSV and PNGs.

Compute, then render: :func:`build_report` calls the pure functions of ``nas.report`` and keeps
their frames (or the reason a section cannot be drawn); the ``_plot_*`` functions draw them;
:func:`write_report` writes ``report.html`` (self-contained, images embedded), ``report.md``,
``pareto.csv`` and ``plots/*.png`` into the campaign folder.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import UserError
from nas.report.pages import render_html, render_md
from nas.table import campaign_objectives, load_campaign, records

__all__ = ["Figure", "Report", "build_report", "write_report"]

# Axis labels with units, by column.
LABELS = {
    "val_acc": "validation accuracy (fraction)",
    "val_acc_best": "best validation accuracy (fraction)",
    "val_loss": "validation loss",
    "latency_ms_p50": "deploy latency, median (ms per batch)",
    "latency_ms_p90": "deploy latency, p90 (ms per batch)",
    "macs_m": "MACs, training form (millions)",
    "macs_m_deploy": "MACs, deploy form (millions)",
    "params_m": "parameters, training form (millions)",
    "params_m_deploy": "parameters, deploy form (millions)",
    "train_saved_mb": "activations saved for backward (MiB)",
    "train_peak_mb": "training peak memory (MiB)",
}
MAX_EDF_AXES = 12


def label(column: str) -> str:
    return LABELS.get(column, column)


@dataclass
class Figure:
    name: str  # file stem under plots/
    caption: str
    png: bytes


@dataclass
class Section:
    title: str
    text: str = ""
    table: Any = None  # a DataFrame shown as a table
    figures: list[Figure] = field(default_factory=list)
    unavailable: str = ""  # why the section cannot be drawn


@dataclass
class Report:
    campaign: str
    folder: Path
    objectives: dict[str, str]
    budgets: list[str]
    summary: str
    sections: list[Section]
    pareto: Any  # the front as a DataFrame (pareto.csv)


# ---------------------------------------------------------------------- compute
def build_report(
    folder: str | Path,
    *,
    objectives: dict[str, str] | None = None,
    budgets: Sequence[str] = (),
) -> Report:
    from nas.report import parse_budget, parse_objectives

    folder, df = load_campaign(folder)
    objectives = parse_objectives(objectives) if objectives else campaign_objectives(folder)
    budget_columns = [parse_budget(b)[0] for b in budgets]
    missing = [c for c in [*objectives, *budget_columns] if c not in df]
    if missing and len(df):
        raise UserError(
            f"{folder}: no column {missing[0]!r} in the campaign table; "
            f"numeric columns: {', '.join(sorted(_numeric_columns(df)))}"
        )
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    modes = sorted(set(df["mode"].dropna())) if len(df) and "mode" in df else []
    summary = (
        f"{len(df)} trials ({', '.join(f'{v} {k}' for k, v in sorted(counts.items())) or 'none'}); "
        f"mode {', '.join(modes) or '-'}; objectives "
        + ", ".join(f"{k} ({v})" for k, v in objectives.items())
        + (f"; budgets {' and '.join(budgets)}" if budgets else "")
    )
    pareto_section, front = _pareto_section(df, objectives, list(budgets))
    knees = pareto_section.table["knee"].tolist() if pareto_section.table is not None else []
    sections = [
        pareto_section,
        _hypervolume_section(df, objectives),
        _edf_section(df),
        _ablation_section(df),
        _attribution_section(df, front, knees),
        _curves_section(front),
        _failures_section(df),
    ]
    name = str(df["campaign"].iloc[0]) if len(df) else folder.name
    return Report(
        name, folder, objectives, list(budgets), summary, sections, _pareto_csv(front, knees)
    )


def _pareto_csv(front, knees):
    """pareto.csv: each member's ids, objectives, costs and architecture (``arch.*``)."""
    lead = ["trial_id", "candidate_id", "seed", "status", "epochs", "val_acc", "val_acc_best"]
    costs = [c for c in LABELS if c not in lead]
    cols = [c for c in dict.fromkeys(lead + costs) if c in front]
    cols += sorted(c for c in front.columns if c.startswith("arch."))
    out = front[cols].copy()
    if len(out):
        out.insert(2, "knee", knees)
    return out


def _numeric_columns(df) -> list[str]:
    return [c for c in df.columns if df[c].dtype.kind in "fiu"]


def _pareto_section(df, objectives, budgets):
    from nas.report import pareto_front

    section = Section("Pareto front")
    if not len(df):
        section.unavailable = "the campaign table has no rows yet"
        return section, df
    result = pareto_front(df, objectives, budgets=budgets)
    front = result.front.copy()
    keep = ["trial_id", "candidate_id", *objectives]
    keep += [c for c in ("params_m", "macs_m", "latency_ms_p50", "val_acc_best") if c not in keep]
    keep = [c for c in keep if c in front]
    table = front[keep].copy()
    table.insert(2, "knee", [i in set(result.knees) for i in front.index])
    section.table = table
    best = (
        f" Best under {' and '.join(budgets)}: "
        + (f"trial {df.loc[result.best, 'trial_id']}." if result.best is not None else "none.")
        if budgets
        else ""
    )
    section.text = (
        f"{len(front)} of {int(result.eligible.sum())} finished trials are non-dominated; "
        f"hypervolume {result.hypervolume:.4g} against the reference "
        + ", ".join(f"{k}={v:.4g}" for k, v in result.reference.items())
        + f".{best}"
    )
    if not len(front):
        section.unavailable = "no finished trial has a value for every objective"
        return section, front
    for x in _scatter_axes(df, objectives):
        section.figures.append(_plot_pareto(df, result, x, objectives))
    return section, front


def _scatter_axes(df, objectives) -> list[str]:
    """Cost axes for the Pareto scatter: the cost objectives, else deploy latency and MACs."""
    costs = [c for c, sense in objectives.items() if sense == "min" and c in df]
    for c in ("latency_ms_p50", "macs_m"):
        if c not in costs and c in df and df[c].notna().any():
            costs.append(c)
    return costs[:2]


def _hypervolume_section(df, objectives):
    from nas.report import hypervolume_over_trials

    section = Section("Hypervolume over trials")
    curve = hypervolume_over_trials(df, objectives) if len(df) else None
    if curve is None or not len(curve) or not (curve["hypervolume"] > 0).any():
        section.unavailable = "no finished trial with every objective value"
        return section
    section.text = (
        f"Final hypervolume {curve['hypervolume'].iloc[-1]:.4g} after {len(curve)} trials."
    )
    section.figures.append(_plot_hypervolume(curve, objectives))
    return section


def _edf_axes(df) -> list[str]:
    ok = df[df["status"] == "ok"]
    axes = []
    for c in df.columns:
        if not c.startswith("param."):
            continue
        counts = ok[c].dropna().astype(str).value_counts()
        if (counts >= 2).sum() >= 2:
            axes.append(c)
    return axes


def _edf_section(df):
    from nas.report import edf

    section = Section("Design-space EDFs (error, per axis value)")
    modes = set(df["mode"].dropna()) if len(df) and "mode" in df else set()
    if modes != {"survey"}:
        section.unavailable = (
            f"EDFs need a survey (a random sample of the space); this campaign is "
            f"{', '.join(sorted(modes)) or 'empty'}"
        )
        return section
    results = []
    for axis in _edf_axes(df):
        try:
            results.append((axis, edf(df, axis)))
        except UserError:
            continue
    if not results:
        section.unavailable = (
            "no design axis has at least two values with two or more finished trials each"
        )
        return section
    results.sort(key=lambda r: -_max_ks(r[1]))
    section.text = (
        "Each curve is the fraction of finished models of one axis value with error (1 - val_acc) "
        "at most x; shaded: 95% bootstrap band. Axes sorted by their largest KS distance."
    )
    for axis, res in results[:MAX_EDF_AXES]:
        section.figures.append(_plot_edf(axis, res))
    return section


def _max_ks(res) -> float:
    """The largest pairwise KS distance between the axis values of an EDF."""
    return float(res.ks["ks"].max()) if len(res.ks) else 0.0


def _ablation_section(df):
    from nas.report import ablation_effects

    section = Section("Ablation effects (vs the baseline)")
    modes = set(df["mode"].dropna()) if len(df) and "mode" in df else set()
    if modes != {"ablate"}:
        section.unavailable = "only ablate campaigns have a baseline to compare against"
        return section
    try:
        effects = ablation_effects(df)
    except UserError as e:
        section.unavailable = str(e)
        return section
    section.table = effects
    section.text = "Mean difference to the baseline over seeds, with 95% confidence intervals."
    for metric in ("val_acc", "latency_ms_p50", "macs_m", "train_saved_mb"):
        if f"d_{metric}" in effects and effects[f"d_{metric}"].notna().any():
            section.figures.append(_plot_ablation(effects, metric))
    return section


def _attribution_section(df, front, knees):
    from nas.candidate import Candidate
    from nas.report import cost_attribution

    section = Section("Cost attribution")
    try:
        if len(df) and set(df["mode"].dropna()) == {"ablate"}:
            section.table = cost_attribution(df)
            section.text = "Cost each ablated axis value adds or removes relative to the baseline."
        elif len(front):
            pick = knees.index(True) if True in knees else 0
            row = records(front.iloc[[pick]])[0]
            section.table = cost_attribution(candidate=Candidate.from_row(row))
            which = "the knee of the front" if True in knees else "the first front member"
            section.text = (
                f"What each design axis adds to trial {row['trial_id']} ({which}): "
                "the difference when the axis is switched off, from exact analytic counts."
            )
        else:
            section.unavailable = "no finished candidate to attribute costs of"
    except UserError as e:
        section.unavailable = str(e)
    return section


def _curves_section(front):
    section = Section("Accuracy per epoch of the front")
    if not len(front) or "history" not in front:
        section.unavailable = "no front member has a training history"
        return section
    section.figures.append(_plot_curves(front))
    return section


def _failures_section(df):
    section = Section("Trials that did not finish")
    bad = df[df["status"] != "ok"] if len(df) else df
    if not len(bad):
        section.text = "Every trial finished (status ok)."
        return section
    section.table = bad[[c for c in ("trial_id", "candidate_id", "status", "reason") if c in bad]]
    return section


# ---------------------------------------------------------------------- draw
def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.2))


def _plot_pareto(df, result, x: str, objectives) -> Figure:
    y = next((c for c, s in objectives.items() if s == "max"), "val_acc")
    fig, ax = _figure()
    eligible = df[result.eligible]
    others = df[~result.eligible & df[x].notna()] if x in df else df.iloc[:0]
    ax.scatter(eligible[x], eligible[y], s=22, color="tab:blue", alpha=0.6, label="finished")
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
    caption = (
        f"{label(y)} vs {label(x)} for every finished trial; red: the Pareto front over "
        f"{', '.join(objectives)}; circled: knee point; grey crosses: trials that were not "
        "trained (infeasible or failed), placed at the lowest accuracy."
    )
    return Figure(f"pareto_{x}", caption, _png(fig))


def _plot_hypervolume(curve, objectives) -> Figure:
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


def _plot_edf(axis: str, res) -> Figure:
    fig, ax = _figure()
    frame = res.to_frame()
    for value, part in frame.groupby("value", sort=True):
        line = ax.step(part["x"], part["F"], where="post", label=f"{value}")[0]
        ax.fill_between(
            part["x"], part["lo"], part["hi"], step="post", alpha=0.15, color=line.get_color()
        )
    ax.set_xlabel("error = 1 - validation accuracy (fraction)")
    ax.set_ylabel("cumulative fraction of models")
    ax.set_ylim(0, 1.02)
    ax.legend(title=axis.removeprefix("param."), fontsize=8)
    ax.grid(alpha=0.3)
    ks = _max_ks(res)
    caption = (
        f"Error EDF of the surveyed models per value of {axis.removeprefix('param.')} "
        f"(higher and further left is better); largest pairwise KS distance {ks:.2f}."
    )
    return Figure(f"edf_{axis.removeprefix('param.')}", caption, _png(fig))


def _plot_ablation(effects, metric: str) -> Figure:
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


def _plot_curves(front) -> Figure:
    fig, ax = _figure()
    for _, row in front.iterrows():
        history = row.get("history")
        history = json.loads(history) if isinstance(history, str) else history
        if not history:
            continue
        epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
        ax.plot(epochs, [h.get("val_acc") for h in history], "-o", ms=3, label=row["trial_id"])
    ax.set_xlabel("epoch")
    ax.set_ylabel(label("val_acc"))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return Figure(
        "curves_front",
        "Validation accuracy after every epoch for each Pareto-front member.",
        _png(fig),
    )


# ---------------------------------------------------------------------- write
def _write(path: Path, data: str | bytes) -> None:
    """Atomic: a temporary file next to the target, then a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def write_report(
    folder: str | Path,
    *,
    objectives: dict[str, str] | None = None,
    budgets: Sequence[str] = (),
) -> Report:
    """Compute and write ``report.html``, ``report.md``, ``pareto.csv`` and ``plots/*.png``."""
    report = build_report(folder, objectives=objectives, budgets=budgets)
    out = report.folder
    try:
        (out / "plots").mkdir(exist_ok=True)
        for s in report.sections:
            for f in s.figures:
                _write(out / "plots" / f"{f.name}.png", f.png)
        front = report.pareto
        _write(out / "pareto.csv", front.to_csv(index=False) if len(front) else "trial_id\n")
        _write(out / "report.md", render_md(report))
        _write(out / "report.html", render_html(report))
    except OSError as e:
        raise UserError(f"{out}: cannot write the report ({e.strerror or e})") from None
    return report
