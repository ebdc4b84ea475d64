"""The report as data: sections of text, tables and figures, and the axis labels (with units)
they share. ``nas.report.render`` fills a ``Report``; ``nas.report.pages`` writes it as HTML and
Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LABELS", "MAX_EDF_AXES", "Figure", "Report", "Section", "label"]

# Axis labels with units, by column.
LABELS = {
    "val_acc": "validation accuracy (fraction)",
    "val_acc_best": "best validation accuracy (fraction)",
    "val_loss": "validation loss",
    "latency_ms_p50": "deploy latency, median (ms per batch)",
    "latency_ms_p90": "deploy latency, p90 (ms per batch)",
    "latency_rel": "deploy latency relative to the reference timed in the same rounds",
    "latency_pred_ms": "deploy latency predicted by a latency model (ms per batch)",
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
