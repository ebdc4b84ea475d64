"""The replay's report: ``replay/report.md`` and ``replay/report.html`` (self-contained, drawn with
``nas.report``'s document, pages and plot helpers), ``replay/replay.csv`` (sampler, seed, trial,
status, objective values, hypervolume so far), ``replay/curves.csv`` (mean and 95% band per
sampler and trial count), ``replay/summary.json`` and ``replay/plots/*.png``.

Every conclusion is printed beside the surrogate's held-out quality; when any modelled target the
replay uses has a held-out Kendall tau below 0.5 the report says, first, that the replay is not
informative, and why.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nas.report.document import Figure, Report, Section, label
from nas.surrogate.fit import TAU_INFORMATIVE, default_targets
from nas.surrogate.stats import beats_random, curve_bands

__all__ = ["ReplayReport", "informative", "quality_line", "write_replay"]


@dataclass
class ReplayReport:
    """What ``nas replay`` wrote: the report, the verdicts and where it lies."""

    report: Report
    folder: Path
    summary: dict


def quality_line(quality: dict, targets) -> str:
    """The surrogate's held-out quality of ``targets``, in one sentence."""
    parts = []
    for t in targets:
        q = quality[t]
        lo, hi = q["kendall_tau_ci95"]
        parts.append(
            f"{t}: Kendall tau {q['kendall_tau']:.2f} (95% interval {lo:.2f} to {hi:.2f}), "
            f"Spearman rho {q['spearman_rho']:.2f}, RMSE {q['rmse']:.3g} ({q['model']})"
        )
    rows = max((quality[t]["rows"] for t in targets), default=0)
    return (
        f"Surrogate held-out quality ({rows} survey rows, nested 5-fold CV): "
        + "; ".join(parts)
        + "."
    )


def informative(quality: dict, targets, epochs) -> tuple[bool, str]:
    """Whether every target's held-out tau reaches ``TAU_INFORMATIVE``, and if not why not."""
    weak = [t for t in targets if quality[t]["kendall_tau"] < TAU_INFORMATIVE]
    if not weak:
        return True, ""
    why = []
    for t in weak:
        q = quality[t]
        lo, hi = q["kendall_tau_ci95"]
        why.append(
            f"{t} has held-out Kendall tau {q['kendall_tau']:.2f} < {TAU_INFORMATIVE} on "
            f"{q['rows']} rows (95% interval {lo:.2f} to {hi:.2f}); the params explain "
            f"{max(q['r2'], 0.0):.0%} of its held-out variance (sd {q['target_sd']:.3g})"
        )
    budget = f"{epochs} epoch(s)" if epochs else "the survey's training budget"
    return False, (
        "NOT INFORMATIVE: the surrogate cannot rank unseen candidates well enough for this replay "
        "to compare samplers: " + "; ".join(why) + ". Either the rows are too few to learn the "
        f"map from params to target, or the target is mostly noise at {budget} per trial "
        "(without repeated trials of the same candidate the two cannot be told apart): survey "
        "more candidates, or train each longer, then refit."
    )


def _band_figure(bands: pd.DataFrame, column: str, ylabel: str, caption: str, facts) -> Figure:
    """Mean and 95% band per sampler; dotted: the trial from which a sampler beats random; a red
    title when the replay is not informative (the PNG may be read without the report)."""
    from nas.report.plots import _figure, _png

    beats = facts.verdicts.get(column, {})
    fig, ax = _figure()
    for sampler, part in bands.groupby("sampler", sort=False):
        n = int(part["n"].max())
        line = ax.plot(part["trial"], part["mean"], label=f"{sampler} (n={n})")[0]
        ax.fill_between(part["trial"], part["lo"], part["hi"], alpha=0.18, color=line.get_color())
        if beats.get(sampler):
            ax.axvline(beats[sampler], color=line.get_color(), ls=":", lw=1.2)
    if facts.why:
        ax.set_title(
            f"NOT INFORMATIVE: a surrogate tau < {TAU_INFORMATIVE}", color="tab:red", fontsize=9
        )
    ax.set_xlabel("proposals (trials)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    caption += " Dotted: the trial from which a sampler beats random with confidence."
    return Figure(f"replay_{column}", caption, _png(fig))


def _verdict_table(table: pd.DataFrame, best: str, larger: bool) -> tuple[pd.DataFrame, dict]:
    """Per sampler: from which trial it beats random (hypervolume, best value), the final means
    and the share of feasible proposals; and the verdicts as data."""
    verdicts = {
        "hypervolume": beats_random(table, "hypervolume"),
        best: beats_random(table, best, larger_is_better=larger),
    }
    last = table[table["trial"] == table["trial"].max()]
    rows = []
    for sampler, part in last.groupby("sampler", sort=False):
        row = {"sampler": sampler}
        for metric, by in verdicts.items():
            first = by.get(sampler, "-") if sampler != "random" else "-"
            row[f"beats random ({metric}) from trial"] = "never" if first is None else first
        row["final hypervolume (mean)"] = float(part["hypervolume"].mean())
        row[f"final {best} (mean)"] = float(part[best].mean())
        row["feasible share"] = float(table[table["sampler"] == sampler]["status"].eq("ok").mean())
        rows.append(row)
    return pd.DataFrame(rows), verdicts


def _conclusions(verdicts: dict, trials: int) -> str:
    lines = []
    for metric, by in verdicts.items():
        for sampler, first in by.items():
            if first is None:
                lines.append(
                    f"{sampler} does not beat random on {metric} with confidence within {trials} trials"
                )
            else:
                lines.append(f"{sampler} beats random on {metric} from trial {first} on")
    return "; ".join(lines) + "." if lines else "No comparison: random was not replayed."


def _outside(survey, ok: pd.DataFrame, columns) -> tuple[pd.Series, list[str]]:
    """Which feasible proposals lie outside the survey's measured range of any of ``columns``,
    and those ranges as text."""
    outside, ranges = pd.Series(False, index=ok.index), []
    for col in columns:
        seen = pd.to_numeric(survey.ok[col], errors="coerce") if col in survey.ok else None
        if seen is None or not seen.notna().any() or col not in ok:
            continue
        lo, hi = float(seen.min()), float(seen.max())
        outside |= (ok[col] < lo) | (ok[col] > hi)
        ranges.append(f"{col} {lo:.4g} to {hi:.4g}")
    return outside, ranges


def _coverage(survey, table: pd.DataFrame) -> str:
    """How many feasible proposals lie outside the survey's cost ranges (extrapolated inputs),
    and how many have a prediction outside the measured range (extrapolated outputs)."""
    ok = table[table["status"] == "ok"]
    costs, cost_ranges = _outside(survey, ok, ("params_m", "macs_m"))
    predicted, value_ranges = _outside(survey, ok, default_targets(survey))

    def share(mask: pd.Series) -> str:
        return f"{float(mask.mean()) if len(mask) else 0.0:.0%}"

    return (
        "The surrogate knows only the region the survey covered "
        f"({len(survey.ok)} trained candidates; {', '.join(cost_ranges) or 'no cost columns'}; "
        f"measured {', '.join(value_ranges) or 'nothing'}). {share(costs)} of the replay's "
        "feasible proposals lie outside those cost ranges, and "
        f"{share(predicted)} have a predicted value outside the measured range: both are "
        "extrapolations, and a sampler that chases them learns the model, not the space. A "
        "replay has no failed trials (out of memory, diverged): the surrogate answers every "
        "valid point."
    )


@dataclass
class _Facts:
    """What every section repeats: the surrogate's held-out quality (in full for the summary and
    the quality section, in short beside every other conclusion) and, when it applies, the
    not-informative statement; the best-value column and its sense."""

    quality: str
    short: str
    why: str
    best: str
    larger: bool
    verdicts: dict = field(default_factory=dict)  # {metric: {sampler: first trial or None}}

    @property
    def lead(self) -> str:
        """The opening of every conclusion when the replay is not informative."""
        if not self.why:
            return ""
        return f"NOT INFORMATIVE (a held-out Kendall tau is below {TAU_INFORMATIVE}; see Surrogate quality). "


def _facts(survey, surrogate, table: pd.DataFrame) -> _Facts:
    targets = default_targets(survey)
    best = next(c for c in table.columns if c.startswith("best_"))
    epochs = survey.manifest.get("spec", {}).get("train", {}).get("epochs")
    _, why = informative(surrogate.quality, targets, epochs)
    larger = survey.objectives.get(best.removeprefix("best_"), "max") == "max"
    short = "; ".join(
        f"{t} {surrogate.quality[t]['kendall_tau']:.2f} (95% interval "
        f"{surrogate.quality[t]['kendall_tau_ci95'][0]:.2f} to {surrogate.quality[t]['kendall_tau_ci95'][1]:.2f})"
        for t in targets
    )
    short = f"Surrogate held-out Kendall tau: {short}."
    return _Facts(quality_line(surrogate.quality, targets), short, why, best, larger)


def _curve_sections(table: pd.DataFrame, facts: _Facts, objectives, reference) -> list[Section]:
    """The anytime hypervolume and best-value sections (mean and 95% band per sampler)."""
    name = facts.best.removeprefix("best_")
    ref = ", ".join(f"{k} = {v:.4g}" for k, v in reference.items())
    hv = _band_figure(
        curve_bands(table, "hypervolume"),
        "hypervolume",
        "hypervolume so far, predicted (objective units)",
        "Anytime hypervolume per sampler: mean over seeds and its 95% band.",
        facts,
    )
    best = _band_figure(
        curve_bands(table, facts.best),
        facts.best,
        f"best feasible so far, predicted: {label(name)}",
        f"Best feasible {name} so far per sampler: mean over seeds and its 95% band.",
        facts,
    )
    return [
        Section(
            "Anytime hypervolume",
            text=facts.lead + f"Hypervolume over {', '.join(objectives)} of the feasible "
            f"proposals so far, against the survey's reference point ({ref}); mean over seeds "
            "with its 95% band. " + facts.short,
            figures=[hv],
        ),
        Section(
            f"Best feasible {name}",
            text=facts.lead + f"Best predicted {name} among the proposals so far that are valid "
            "and inside the space's constraints; mean over the seeds that have one, with its 95% "
            "band. " + facts.short,
            figures=[best],
        ),
    ]


def build_replay(survey, surrogate, table: pd.DataFrame, settings: dict) -> tuple[Report, dict]:
    """The report and its machine-readable summary."""
    facts = _facts(survey, surrogate, table)
    targets = default_targets(survey)
    verdict, verdicts = _verdict_table(table, facts.best, facts.larger)
    facts.verdicts = verdicts
    conclusions = _conclusions(verdicts, settings["trials"])
    ok_line = (
        f"Every target the replay uses ranks held-out rows with Kendall tau >= {TAU_INFORMATIVE}."
    )
    sections = [
        Section(
            "Surrogate quality (held-out)",
            text=(facts.why or ok_line) + " " + facts.quality,
            table=_quality_table(surrogate.quality, targets),
        ),
        Section(
            "Against random",
            text=facts.lead + conclusions + " A sampler beats random from trial t when, at t "
            "and at every later trial count, the 95% Welch interval of the difference of the "
            "mean over seeds (sampler minus random) lies above 0. " + facts.short,
            table=verdict,
        ),
        *_curve_sections(table, facts, survey.objectives, settings["reference"]),
        Section("Limits", text=_coverage(survey, table)),
    ]
    text = (
        f"Replay of {', '.join(settings['samplers'])} on the surrogate of survey "
        f"{survey.folder.name}: {settings['trials']} proposals x {settings['repeats']} seeds "
        f"each. {facts.why + ' ' if facts.why else ''}{conclusions} {facts.quality}"
    )
    name = f"{survey.folder.name} (sampler replay)"
    report = Report(name, survey.folder / "replay", survey.objectives, [], text, sections, None)
    summary = {
        **settings,
        "informative": not facts.why,
        "not_informative_because": facts.why or None,
        "beats_random_from_trial": verdicts,
        "quality": {t: surrogate.quality[t] for t in targets},
    }
    bands = pd.concat([curve_bands(table, "hypervolume"), curve_bands(table, facts.best)])
    return report, {"summary": summary, "bands": bands}


def _quality_table(quality: dict, targets) -> pd.DataFrame:
    rows = []
    for t in targets:
        q = quality[t]
        rows.append(
            {
                "target": t,
                "model": q["model"],
                "rows": q["rows"],
                "kendall_tau": q["kendall_tau"],
                "tau 95% interval": f"{q['kendall_tau_ci95'][0]:.2f} to {q['kendall_tau_ci95'][1]:.2f}",
                "spearman_rho": q["spearman_rho"],
                "rmse": q["rmse"],
                "r2": q["r2"],
            }
        )
    return pd.DataFrame(rows)


def write_replay(survey, surrogate, table: pd.DataFrame, settings: dict) -> ReplayReport:
    """Build the report and write ``<campaign>/replay/`` whole (or leave it as it was)."""
    from nas.report.pages import render_html, render_md
    from nas.surrogate.model import replace_folder

    report, extra = build_replay(survey, surrogate, table, settings)

    def fill(tmp: Path) -> None:
        (tmp / "plots").mkdir()
        for s in report.sections:
            for f in s.figures:
                (tmp / "plots" / f"{f.name}.png").write_bytes(f.png)
        table.to_csv(tmp / "replay.csv", index=False)
        extra["bands"].to_csv(tmp / "curves.csv", index=False)
        (tmp / "summary.json").write_text(json.dumps(extra["summary"], indent=2, default=_json))
        (tmp / "report.md").write_text(render_md(report))
        (tmp / "report.html").write_text(render_html(report))

    replace_folder(report.folder, fill)
    return ReplayReport(report, report.folder, extra["summary"])


def _json(v):
    return None if isinstance(v, float) and math.isnan(v) else str(v)
