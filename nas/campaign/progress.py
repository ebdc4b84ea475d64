"""Progress of a running campaign: one line per finished trial and a summary line, logged to the
``nas.progress`` logger (the CLI sends it to stderr; ``--quiet`` turns it off)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["Progress", "format_duration"]

log = logging.getLogger("nas.progress")
_FAILED = ("diverged", "oom", "error")


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Counts finished trials of ``planned`` and estimates the time left from the mean wall time
    of finished trials and how many run side by side."""

    def __init__(self, planned: int, objectives: Mapping[str, str]):
        self.planned, self.objectives = planned, dict(objectives)
        self.started = time.time()
        self.counts: dict[str, int] = {}
        self.running = 0
        self.best: dict[str, tuple[float, str]] = {}  # objective -> (best value, trial id)
        self.last_line = self.started  # when a line was last logged (nas.campaign.watch)

    def trial_finished(self, row: Mapping[str, Any], running: int) -> None:
        status = str(row.get("status"))
        self.counts[status] = self.counts.get(status, 0) + 1
        self.running = running
        values = " ".join(
            f"{k}={row[k]:.4g}"
            for k in self.objectives
            if isinstance(row.get(k), (int, float)) and math.isfinite(row[k])
        )
        wall = row.get("wall_s")
        took = format_duration(wall) if isinstance(wall, (int, float)) else "?"
        reason = f" ({row['reason']})" if status != "ok" and row.get("reason") else ""
        if status == "ok":
            self._keep_best(row)
        log.info("trial %s %s%s %s [%s]", row.get("trial_id"), status, reason, values, took)
        log.info(self.summary())
        self.last_line = time.time()

    def _keep_best(self, row: Mapping[str, Any]) -> None:
        for k, mode in self.objectives.items():
            v = row.get(k)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            old = self.best.get(k)
            if old is None or (v > old[0] if mode == "max" else v < old[0]):
                self.best[k] = (float(v), str(row.get("trial_id")))

    def failed(self) -> int:
        return sum(self.counts.get(s, 0) for s in _FAILED)

    def best_text(self) -> str:
        """``best val_acc=0.81 (trial t1)`` per objective (each on its own), or ``no result yet``."""
        if not self.best:
            return "no result yet"
        return "best " + " ".join(
            f"{k}={v:.4g} ({trial})" for k, (v, trial) in sorted(self.best.items())
        )

    def summary(self) -> str:
        done = sum(self.counts.values())
        failed = self.failed()
        elapsed = time.time() - self.started
        left = max(self.planned - done, 0)
        eta = elapsed / done * left if done else math.inf
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        return (
            f"{done} done ({parts}), {self.running} running, {failed} failed of "
            f"{self.planned} planned; elapsed {format_duration(elapsed)}, "
            f"ETA {format_duration(eta) if left else '0s'}"
        )
