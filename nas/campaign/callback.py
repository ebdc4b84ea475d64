"""Ray Tune callback (driver side) that writes the campaign table; imports ray at module level,
so it is only imported by ``nas.campaign`` when a campaign runs. Module-level so that
``Tuner.restore`` can unpickle it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ray import tune

from nas.campaign.table import CampaignTable
from nas.errors import UserError, is_oom
from nas.space.candidate import Candidate
from nas.train.trainer import TrainConfig
from nas.vocab import FINISHED_STATUSES

__all__ = ["TableCallback", "WRITE_ERRORS"]

# Table writes that failed in this driver process (disk full, permissions). Tune wraps an
# exception raised in a callback into a TuneError with a traceback; ``nas.campaign`` re-raises the
# first of these instead, as one clear line.
WRITE_ERRORS: list[UserError] = []


class TableCallback(tune.Callback):
    """Driver side: one row per finished trial, written atomically as it finishes."""

    def __init__(
        self, folder: str, campaign: str, mode: str, *, ledger=None, progress=None, watch=None
    ):
        self.folder, self.campaign, self.mode = folder, campaign, mode
        self.ledger, self.progress = ledger, progress  # a Ledger actor name; a Progress
        self.watch = watch  # a nas.campaign.watch.Watch: status lines, the wait for resources
        self._table: CampaignTable | None = None  # opened once: a write costs O(1), not O(rows)
        # the trials running now, kept as they start and end: counting them is O(1), not O(trials)
        self._running: set[str] = set()

    def __getstate__(self) -> dict:  # Tune pickles callbacks with the experiment
        return {**self.__dict__, "_table": None, "_running": set()}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"_running": set(), **state})

    @property
    def table(self) -> CampaignTable:
        if self._table is None or str(self._table.folder) != str(self.folder):
            self._table = CampaignTable(self.folder)
        return self._table

    def _write(
        self, trial, trials=None, status: str | None = None, reason: str | None = None
    ) -> None:
        result = trial.last_result or {}
        if result.get("_existing"):  # its row was written before a driver crash
            return
        if "_row" not in result:  # failed before its first report
            row = self._fallback(trial, result, status, reason)
        else:
            row = json.loads(result["_row"])
            if status is not None:  # the worker died after a report
                row.update(status=status, reason=reason)
            elif result.get("_partial"):  # stopped by the scheduler after an epoch
                planned = row.get("train.epochs") or TrainConfig.epochs
                if row["epochs"] < planned:
                    row["status"] = "stopped"
                    row["reason"] = (
                        f"stopped early by the scheduler after {row['epochs']} of {planned} epochs"
                    )
            row["wall_s"] = row.get("finished_at", 0) - row.get("started_at", 0)
        plan = trial.config.get("plan") or {}
        row["axis"], row["axis_value"] = plan.get("axis"), plan.get("axis_value")
        row["trial_id"] = trial.trial_id
        row["node"] = (trial.last_result or {}).get("node_ip")  # where the trial ran (last)
        try:
            self.table.add(row)
        except UserError as e:
            WRITE_ERRORS.append(e)
            raise  # stops the experiment: no trial runs whose row could not be kept
        self._tell(row, trials)

    def _tell(self, row: dict, trials) -> None:
        """The ledger learns the row (resume, reuse); the progress line is printed."""
        if self.ledger:
            from nas.campaign.services import lookup

            finished = row.get("status") in FINISHED_STATUSES
            lookup(self.ledger).add.remote(row, finished)
        self._running.discard(row["trial_id"])
        if self.progress is not None:
            self.progress.trial_finished(row, len(self._running))

    def _fallback(self, trial, result: dict, status, reason) -> dict:
        plan = trial.config.get("plan") or {}
        c = Candidate.from_dict(plan["candidate"]) if plan else None
        epochs = int(result.get("epoch", 0) or 0)
        if status is None:
            status, reason = "stopped", f"stopped early by the scheduler after {epochs} epochs"
        row = {
            "campaign": self.campaign,
            "mode": self.mode,
            "status": status,
            "reason": reason,
            "epochs": epochs,
            "candidate_id": c.id if c else None,
            "seed": plan.get("seed"),
            "run_key": plan.get("run_key"),
        }
        for k in ("val_acc", "val_loss", "train_loss", "params_m", "macs_m", "latency_ms_p50"):
            if k in result:
                row[k] = result[k]
        if c is not None:
            row.update({f"arch.{k}": v for k, v in c.to_params().items()})
        elif trial.config:
            row.update({f"param.{k}": v for k, v in trial.config.items()})
        return row

    def on_trial_start(self, iteration, trials, trial, **info):
        self._running.add(trial.trial_id)
        if self.watch is not None:
            self.watch.trial_started(trial, len(self._running))

    def on_step_end(self, iteration, trials, **info):
        if self.watch is not None:
            self.watch.step(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._write(trial, trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        text = ""
        if trial.error_file and os.path.exists(trial.error_file):
            text = Path(trial.error_file).read_text()[-2000:]
        last = text.strip().splitlines()[-1] if text.strip() else "the trial's worker failed"
        status = "oom" if is_oom(text) else "error"
        self._write(trial, trials, status=status, reason=last[:500])
