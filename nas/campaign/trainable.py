"""The worker side of a campaign: the Ray Tune function trainable. It restores the trial's
checkpoint, turns the trial's config (a planned candidate, or Optuna's flat params) into a
Candidate, and runs ``nas.campaign.trial.run_trial`` with a report that checkpoints every epoch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nas.campaign.runner import Runner
from nas.campaign.table import CampaignTable
from nas.campaign.trial import TrialSpec, objective_defaults, run_trial, trial_run_key
from nas.space.candidate import Candidate, CandidateError
from nas.space.space import Space

__all__ = ["trainable_with_resources"]


def _restore_checkpoint() -> Path:
    """The trial's local checkpoint folder, filled from Tune's checkpoint when it restarts."""
    from ray import tune

    ckpt_dir = Path(tune.get_context().get_trial_dir()) / "nas_ckpt"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as d:
            for f in Path(d).iterdir():
                shutil.copy2(f, ckpt_dir / f.name)
    return ckpt_dir


def _reporter(ckpt_dir: Path):
    """``tune.report`` that attaches the checkpoint to every epoch report."""
    from ray import tune

    def report(metrics: dict) -> None:
        if "epoch" in metrics and (ckpt_dir / "train.pt").exists():
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(ckpt_dir)))
        else:
            tune.report(metrics)

    return report


def _trainable(config: dict, spec: TrialSpec, space: Space | None, folder: str) -> None:
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    ckpt_dir = _restore_checkpoint()
    report = _reporter(ckpt_dir)
    table = CampaignTable(folder)
    if table.has(trial_id):  # finished before a driver crash: never re-run, keep its row as is
        row = table.row(trial_id)
        values = {k: float(row[k]) for k in spec.objectives if row.get(k) is not None}
        report({**objective_defaults(spec.objectives), **values, "_existing": True})
        return
    plan = config.get("plan")
    if plan is None:  # search: flat params suggested by Optuna
        params = space.from_optuna_params(config)
        try:
            sample = space.to_sample(params)
        except CandidateError as e:
            row = {
                "campaign": spec.campaign,
                "mode": spec.mode,
                "trial_id": trial_id,
                "status": "infeasible",
                "reason": f"invalid candidate: {e}",
                "epochs": 0,
                **{f"param.{k}": v for k, v in params.items()},
            }
            report({**objective_defaults(spec.objectives), "_row": json.dumps(row, default=str)})
            return
        candidate, seed, train = sample.candidate, spec.train.get("seed", 0), sample.train
    else:
        candidate, seed, train = Candidate.from_dict(plan["candidate"]), plan["seed"], plan["train"]
        params = plan.get("params")
    key = trial_run_key(spec, candidate, seed, train)
    if plan is None and key in table.done_keys():  # the same work was done before: reuse its row
        old = table.row(table.df.loc[table.df["run_key"] == key, "trial_id"].iloc[0])
        row = {**old, "trial_id": trial_id, "reused_from": old["trial_id"], "mode": spec.mode}
        values = {
            k: float(old[k])
            for k in spec.objectives
            if old.get(k) is not None and old["status"] == "ok"
        }
        report(
            {**objective_defaults(spec.objectives), **values, "_row": json.dumps(row, default=str)}
        )
        return
    run_trial(
        spec,
        candidate,
        trial_id=trial_id,
        seed=seed,
        train_overrides=train,
        report=report,
        checkpoint=ckpt_dir / "train.pt",
        params=params,
    )


def trainable_with_resources(spec: TrialSpec, space: Space | None, folder: Path, runner: Runner):
    from ray import tune

    fn = tune.with_parameters(_trainable, spec=spec, space=space, folder=str(folder))
    return tune.with_resources(fn, {"cpu": runner.cpus_per_trial, "gpu": runner.gpus_per_trial})
