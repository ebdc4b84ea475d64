"""The **Claims** section of an ablation campaign whose space has a ``claims:`` block
(``nas.space.claims``): per claim, the effect ``metric(treatment) - metric(control)`` with its
95% interval and a verdict at this budget.

Interval: the mean over seeds of the per-seed difference with a 95% Student t interval, paired
by seed when both arms trained the same seeds (an ablation trains every point with the
baseline's seeds, so normally paired), else Welch's (``nas.report.ablation``). Verdict, for a
claim ``effect > m`` (``m`` the margin, 0 unless given): *reproduced* when the whole interval lies
above ``m``, *contradicted* when it lies below, *inconclusive at this budget* when it contains
``m``; mirrored for ``effect < m``. An arm with no trained rows, or fewer than two seeds, gives
*not measured* with the reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from nas.report.ablation import _baseline_value, _decode, _difference, _per_seed, _require_ablation
from nas.report.document import Section

__all__ = ["VERDICTS", "budget_text", "claim_effects", "claims_section", "verdict"]

VERDICTS = ("reproduced", "contradicted", "inconclusive at this budget", "not measured")
COLUMNS = ["claim", "metric", "treatment", "control", "expect", "n", "effect", "ci_low",
           "ci_high", "interval", "verdict", "reason"]  # fmt: skip


def verdict(low: float, high: float, direction: str, margin: float = 0.0) -> str:
    """The verdict of an interval [low, high] on a claim ``effect <direction> margin``."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not measured"
    above, below = low > margin, high < margin
    if direction == "<":
        above, below = below, above
    return "reproduced" if above else "contradicted" if below else "inconclusive at this budget"


def _arm(df: pd.DataFrame, point: dict) -> pd.DataFrame:
    """The rows of the ablation point ``point`` ({axis: value}): a one-factor point, a factorial
    cell (matching it on the point's axes), or the baseline where its own values are the point's."""
    axis_value = df["axis_value"].map(_decode)
    if len(point) == 1 and (axis := next(iter(point))) in set(df["axis"]):
        rows = df[(df["axis"] == axis) & axis_value.map(lambda v: v == point[axis])]
    else:
        cells = (df["axis"] == "factorial") & axis_value.map(
            lambda v: isinstance(v, dict) and all(v.get(a) == x for a, x in point.items())
        )
        rows = df[cells]
    base = df[df["axis"] == "baseline"]
    if len(base) and all(_baseline_value(base.iloc[0], a) == v for a, v in point.items()):
        rows = pd.concat([rows, base])  # the baseline is the point's trial (never planned twice)
    return rows


def claim_effects(df: pd.DataFrame, claims: Iterable) -> pd.DataFrame:
    """One row per claim (``COLUMNS``): the effect over seeds, its 95% interval, the verdict."""
    _require_ablation(df)
    rows = []
    for c in claims:
        row: dict[str, Any] = {"claim": c.name, "metric": c.metric, "expect": c.expect,
                               "treatment": _point_text(c.treatment),
                               "control": _point_text(c.control), "reason": None}  # fmt: skip
        arms = [_arm(df, p) for p in (c.treatment, c.control)]
        t, k = (_per_seed(a, c.metric) if len(a) else pd.Series(dtype=float) for a in arms)
        effect, half = _difference(t, k)
        paired = len(t) > 0 and set(t.index) == set(k.index)
        row |= {"n": min(len(t), len(k)), "effect": effect,
                "ci_low": effect - half, "ci_high": effect + half,
                "interval": "paired t" if paired else "Welch t"}  # fmt: skip
        row["verdict"] = verdict(row["ci_low"], row["ci_high"], c.direction, c.margin)
        if row["verdict"] == "not measured":
            row["reason"] = (
                f"{c.metric}: {len(t)} treatment and {len(k)} control seed(s) with a value; "
                "an interval needs two of each"
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _point_text(point: dict) -> str:
    return ", ".join(f"{a}={json.dumps(v)}" for a, v in point.items())


def budget_text(folder: Path) -> str:
    """The training budget of a campaign, from ``campaign.json``: data set, image size, images,
    epochs, pre-training epochs and seeds."""
    manifest = Path(folder) / "campaign.json"
    spec = json.loads(manifest.read_text()).get("spec", {}) if manifest.is_file() else {}
    data, train, pre = spec.get("data", {}), spec.get("train", {}), spec.get("pretrain", {})
    parts = [str(data.get("dataset", "digits"))]
    if data.get("image_size"):
        parts.append(f"{data['image_size']} px")
    if data.get("limit"):
        parts.append(f"{data['limit']} images")
    parts.append(f"{train.get('epochs', 6)} epochs")
    if pre.get("epochs") and pre.get("method", "none") != "none":
        parts.append(f"FCMAE {pre['epochs']} epochs")
    return ", ".join(parts)


def claims_section(df: pd.DataFrame, folder: Path) -> Section:
    """The Claims section of the campaign in ``folder`` (unavailable without a claims block)."""
    from nas.campaign.table import campaign_space

    section = Section("Claims")
    try:
        claims = campaign_space(folder).claims
    except Exception as e:  # noqa: BLE001 - a report is drawn without the section
        section.unavailable = f"the campaign's space cannot be read ({e})"
        return section
    modes = set(df["mode"].dropna()) if len(df) and "mode" in df else set()
    if claims is None or modes != {"ablate"}:
        # a survey or search of a claim space has no treatment/control arms to compare
        section.unavailable = "not an ablation of a space with a claims: block (nas claims)"
        return section
    table = claim_effects(df, claims.effects)
    seeds = int(df["seed"].nunique())
    wall = pd.to_numeric(df.get("wall_s"), errors="coerce").sum()
    budget = f"{budget_text(folder)}, {seeds} seeds"
    section.table = table.assign(budget=budget)
    says = {c.name: c.says for c in claims.effects if c.says}
    section.text = (
        f"Each claim as the effect metric(treatment) - metric(control), mean over seeds with its "
        "95% t interval (paired by seed where both arms trained the same seeds, else Welch). "
        "Verdict: reproduced when the interval lies wholly on the expected side of the margin "
        "(0 unless given), contradicted when wholly on the other, inconclusive at this budget "
        f"when it contains it. Budget: {budget}; {wall:.0f} s of trial time. "
        + " ".join(f"{name}: {text}" for name, text in says.items())
    )
    return section
