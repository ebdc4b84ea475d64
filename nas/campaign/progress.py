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
        log.info("trial %s %s%s %s [%s]", row.get("trial_id"), status, reason, values, took)
        log.info(self.summary())

    def summary(self) -> str:
        done = sum(self.counts.values())
        failed = sum(self.counts.get(s, 0) for s in _FAILED)
        elapsed = time.time() - self.started
        left = max(self.planned - done, 0)
        eta = elapsed / done * left if done else math.inf
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        return (
            f"{done} done ({parts}), {self.running} running, {failed} failed of "
            f"{self.planned} planned; elapsed {format_duration(elapsed)}, "
            f"ETA {format_duration(eta) if left else '0s'}"
        )
