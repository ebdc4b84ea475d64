"""Report section of the feature-diversity columns (``featdiv_s<i>``, ``nas.measure.featdiv``):
the mean per stage for each value of each design axis, and one plot per axis (ConvNeXt V2's
Fig. 4, per stage instead of per layer)."""

from __future__ import annotations

import pandas as pd

from nas.report.analysis import _erf_axes, _trained
from nas.report.document import Figure, Section
from nas.report.plots import _figure, _png
from nas.vocab import FEATDIV_COLUMNS

__all__ = ["featdiv_section", "featdiv_table"]

# a varied setting outside the architecture that changes features (ConvNeXt V2's FCMAE question)
SETTING_AXES = ("pretrain.method",)


def _axes(ok: pd.DataFrame) -> list[str]:
    extra = [c for c in SETTING_AXES if c in ok and 2 <= ok[c].dropna().astype(str).nunique()]
    return [*_erf_axes(ok), *(c for c in extra if f"param.{c}" not in ok)]


def featdiv_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows ``axis, value, n`` and the mean of each ``featdiv_s<i>`` column over the trained
    trials with that value; empty when no trained trial has a feature diversity."""
    ok = _trained(df)
    columns = [c for c in FEATDIV_COLUMNS if c in ok]
    if not columns or not ok["featdiv_s0"].notna().any():
        return pd.DataFrame(columns=["axis", "value", "n", *FEATDIV_COLUMNS])
    ok = ok[ok["featdiv_s0"].notna()]
    parts = []
    for axis in _axes(ok):
        g = ok.groupby(ok[axis].astype(str))[columns]
        t = g.mean().reset_index().rename(columns={axis: "value"})
        t.insert(0, "axis", axis)
        t.insert(2, "n", g.size().to_numpy())
        parts.append(t)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def featdiv_section(df: pd.DataFrame) -> Section:
    section = Section("Feature diversity")
    table = featdiv_table(df) if len(df) else pd.DataFrame()
    if not len(table):
        section.unavailable = (
            "no trained trial with a varied design axis has a feature diversity "
            "(turn it on with measure: {feature_diversity: true})"
        )
        return section
    section.table = table
    images = _trained(df)["featdiv_images"].dropna() if "featdiv_images" in df else []
    section.text = (
        "Feature collapse (ConvNeXt V2, sec. 3.2): per stage, the mean cosine distance 1 - cos "
        "between the channels' activation maps of the trained network, each channel flattened "
        f"over {int(images.iloc[0]) if len(images) else 'the'} validation images and their "
        "positions, over all channel pairs (0: collapsed, every channel alike; a constant or "
        "dead channel counts as 0 to all others). Mean per design-axis value."
    )
    for axis, part in table.groupby("axis", sort=False):
        section.figures.append(_plot(axis, part))
    return section


def _plot(axis: str, part: pd.DataFrame) -> Figure:
    fig, ax = _figure(size=(5.2, 3.6))
    stages = [c for c in FEATDIV_COLUMNS if c in part and part[c].notna().any()]
    for _, row in part.iterrows():
        ax.plot(range(len(stages)), [row[c] for c in stages], marker="o",
                label=f"{row['value']} (n={row['n']})")  # fmt: skip
    ax.set_xticks(range(len(stages)), [c.removeprefix("featdiv_") for c in stages])
    ax.set_xlabel("stage")
    ax.set_ylabel("mean channel cosine distance")
    ax.legend(title=axis, fontsize=7)
    ax.grid(alpha=0.3)
    caption = f"Feature diversity per stage for each value of {axis} (mean over trials)."
    return Figure(f"featdiv_{axis.replace('.', '_')}", caption, _png(fig))
