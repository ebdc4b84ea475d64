"""``OptunaSearch`` that tells Optuna only measured values. Imports ray at module level, so only
``nas.campaign.search`` imports it, when a search starts; module-level so that ``Tuner.restore``
can unpickle it."""

from __future__ import annotations

import json
import math

import optuna
from ray.tune.search.optuna import OptunaSearch

__all__ = ["TruthfulOptunaSearch", "optuna_state"]


def optuna_state(result: dict | None, error: bool) -> str:
    """The Optuna state of a finished Tune trial, from its last report: COMPLETE with
    the measured values of a trained trial; PRUNED for a trial the scheduler stopped; FAIL for
    everything else (infeasible, diverged, oom, error, a worker that died). Never a stand-in."""
    result = result or {}
    if error:
        return "FAIL"
    if result.get("_partial"):  # its last report is an epoch report: the scheduler stopped it
        row = json.loads(result.get("_row") or "{}")
        planned = row.get("train.epochs") or math.inf
        return "COMPLETE" if row.get("epochs", 0) >= planned else "PRUNED"  # at max_t: finished
    if result.get("status") == "stopped":
        return "PRUNED"
    return "COMPLETE" if result.get("status") == "ok" else "FAIL"


class TruthfulOptunaSearch(OptunaSearch):
    """Trained trials are COMPLETE with their measured objectives; scheduler-stopped ones PRUNED;
    infeasible, failed and crashed ones FAIL (user attrs ``status`` and ``tune_trial_id`` say
    which). Ray's own class would tell a trial without a metric COMPLETE or PRUNED by guess."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        metric = self.metric if isinstance(self.metric, str) else None
        if metric is None or metric not in result or "epoch" not in result:
            return
        if trial_id in self._completed_trials or self._told(trial_id):
            return  # told before a driver crash; its restarted run only catches up
        super().on_trial_result(trial_id, result)  # intermediate values (one objective)

    def _told(self, trial_id: str) -> bool:
        """Whether Optuna already finished this trial (a searcher state older than the study)."""
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            return True  # unknown to this searcher: nothing to tell
        return self._ot_study._storage.get_trial(ot_trial._trial_id).state.is_finished()  # noqa: SLF001

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id in self._completed_trials or self._told(trial_id):
            self._completed_trials.add(trial_id)
            return
        result = result or {}
        state = optuna_state(result, error)
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        values = [result.get(m) for m in metrics]
        if state == "COMPLETE" and any(v is None for v in values):
            state = "FAIL"  # an objective was not measured: nothing to learn from
        ot_trial = self._ot_trials[trial_id]
        ot_trial.set_user_attr("tune_trial_id", trial_id)
        ot_trial.set_user_attr("status", result.get("status") or state.lower())
        self._ot_study.tell(
            ot_trial,
            (values if len(values) > 1 else values[0]) if state == "COMPLETE" else None,
            state=getattr(optuna.trial.TrialState, state),
        )
        self._completed_trials.add(trial_id)
