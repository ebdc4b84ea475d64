"""``nas report``: render a campaign's analysis (``nas.report``) as HTML, Markdown, CSV and PNGs.

Compute, then render: :func:`build_report` calls the pure functions of ``nas.report`` and keeps
their frames (or the reason a section cannot be drawn); the ``_plot_*`` functions draw them;
:func:`write_report` writes ``report.html`` (self-contained, images embedded), ``report.md``,
``pareto.csv`` and ``plots/*.png`` into the campaign folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from nas.campaign.table import campaign_objectives, load_campaign, records
from nas.errors import UserError
from nas.report import plots
from nas.report.analysis import erf_section, funnel_section, proxy_section
from nas.report.claims import claims_section
from nas.report.document import LABELS, MAX_EDF_AXES, Figure, Report, Section
from nas.report.featdiv import featdiv_section
from nas.report.pages import render_html, render_md

__all__ = ["Figure", "Report", "build_report", "write_report"]


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
        funnel_section(df),
        proxy_section(df),
        erf_section(df, front),
        featdiv_section(df),
        claims_section(df, folder),
        _ablation_section(df),
        *_factorial_sections(df),
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
        section.figures.append(plots.plot_pareto(df, result, x, objectives))
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
    section.figures.append(plots.plot_hypervolume(curve, objectives))
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
        try:  # without bootstrap bands: those only for the axes drawn (below)
            results.append((axis, edf(df, axis, bootstrap=0)))
        except UserError:
            continue
    if not results:
        section.unavailable = (
            "no design axis has at least two values with two or more finished trials each"
        )
        return section

    def ranked(res) -> bool:
        return min(res.n.values()) >= plots.EDF_MIN_GROUP

    # ranked axes first (by KS distance), then the ones with too few models, in axis order
    results.sort(key=lambda r: (not ranked(r[1]), -plots.max_ks(r[1]) if ranked(r[1]) else 0))
    few = sum(not ranked(r) for _, r in results)
    section.text = (
        "Each curve is the fraction of finished models of one axis value with error (1 - val_acc) "
        "at most x; shaded: 95% bootstrap band; n per value in the legend. A conclusion about an "
        "axis needs many models per value (pycls compares hundreds per design space): an axis is "
        f"ranked by its largest KS distance only when every value has at least "
        f"{plots.EDF_MIN_GROUP} finished models"
        + (
            f"; {few} of {len(results)} axes have fewer and are drawn with a warning, after the "
            "ranked ones, unranked."
            if few
            else "."
        )
    )
    for axis, _ in results[:MAX_EDF_AXES]:
        section.figures.append(plots.plot_edf(axis, edf(df, axis)))
    return section


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
    if effects.empty:
        section.unavailable = "no one-factor rows (a factorial ablation: see Factorial effects)"
        return section
    section.table = effects
    section.text = "Mean difference to the baseline over seeds, with 95% confidence intervals."
    for metric in ("val_acc", "latency_ms_p50", "macs_m", "train_saved_mb"):
        if f"d_{metric}" in effects and effects[f"d_{metric}"].notna().any():
            section.figures.append(plots.plot_ablation(effects, metric))
    return section


def _factorial_sections(df) -> list[Section]:
    from nas.report.factorial import factorial_cells, factorial_effects

    cells_section, effects_section = Section("Factorial cells"), Section("Factorial effects")
    both = [cells_section, effects_section]
    if not len(df) or "axis" not in df or not (df["axis"] == "factorial").any():
        cells_section.unavailable = "only nas ablate --factorial campaigns have factorial cells"
        effects_section.unavailable = cells_section.unavailable
        return both
    metrics = [m for m in ("val_acc", "latency_ms_p50", "macs_m") if m in df]
    try:
        cells_section.table = factorial_cells(df, metrics)
        effects_section.table = factorial_effects(df, metrics)
    except UserError as e:
        cells_section.unavailable = effects_section.unavailable = str(e)
        return both
    cells_section.text = "Every cell of the factorial: mean over seeds and its 95% interval."
    effects_section.text = (
        "The effect of changing one axis with the others held fixed: mean difference over "
        "seeds (paired by seed) with its 95% interval. An interval that contains 0 is no "
        "measured effect."
    )
    return both


def _attribution_section(df, front, knees):
    from nas.report import cost_attribution
    from nas.space.candidate import Candidate

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
    section.figures.append(plots.plot_curves(front))
    return section


def _failures_section(df):
    section = Section("Trials that did not finish")
    bad = df[~df["status"].isin(["ok", "screened"])] if len(df) else df  # screened: the funnel
    if not len(bad):
        section.text = "Every trial that was to train finished (status ok)."
        return section
    cols = ("trial_id", "candidate_id", "status", "epochs", "reason")  # stopped: epochs it had
    section.table = bad[[c for c in cols if c in bad]]
    return section


# ---------------------------------------------------------------------- draw
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
