"""Names of the measured columns of the campaign table: the one list objectives and constraints
may refer to. Units live in the names (``_m`` = millions, ``_ms`` = milliseconds, ``_mb`` = MiB).
"""

from __future__ import annotations

__all__ = ["COST_COLUMNS", "METRIC_COLUMNS", "COLUMNS", "DEFAULT_SENSE"]

# Known before training (constraints on these are checked before anything trains).
COST_COLUMNS = (
    "params_m",
    "params_m_deploy",
    "macs_m",
    "macs_m_deploy",
    "latency_ms_p50",
    "latency_ms_p90",
    "train_saved_mb",
    "train_peak_mb",
)
# Known after (or during) training.
METRIC_COLUMNS = ("val_acc", "val_loss", "train_loss", "epoch_s", "images_per_s")
COLUMNS = COST_COLUMNS + METRIC_COLUMNS

DEFAULT_SENSE = {c: "min" for c in COLUMNS} | {"val_acc": "max", "images_per_s": "max"}
