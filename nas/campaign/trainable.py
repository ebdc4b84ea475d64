"""The worker side of a campaign: the Ray Tune function trainable. It restores the trial's
checkpoint, turns the trial's config (a planned candidate, or Optuna's flat params) into a
Candidate, and runs ``nas.campaign.trial.run_trial`` with a report that checkpoints every epoch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nas.campaign.runner import Runner
from nas.campaign.trial import TrialSpec, measured_objectives, run_trial, trial_run_key
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
        epoch = "epoch" in metrics or "pretrain_epoch" in metrics
        if epoch and any(ckpt_dir.glob("*.pt")):  # train.pt, and pretrain.pt with pre-training
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(ckpt_dir)))
        else:
            tune.report(metrics)

    return report


def _trainable(config: dict, spec: TrialSpec, space: Space | None) -> None:
    from ray import tune

    from nas.campaign.services import lookup

    trial_id = tune.get_context().get_trial_id()
    ckpt_dir = _restore_checkpoint()
    report = _reporter(ckpt_dir)
    ledger = lookup(spec.services["ledger"])
    existing = ray_get(ledger.existing.remote(trial_id))
    if existing is not None:  # finished before a driver crash: never re-run, keep its row as is
        report({**existing, "_existing": True})
        return
    plan = config.get("plan")
    if plan is None:  # search: flat params suggested by Optuna
        params = space.from_optuna_params(config)
        try:
            sample = space.to_sample(params)
        except CandidateError as e:
            report(_invalid(spec, trial_id, params, e))
            return
        candidate, seed, train = sample.candidate, spec.train.get("seed", 0), sample.train
        pre, extra = sample.pretrain, None
    else:
        candidate, seed, train = Candidate.from_dict(plan["candidate"]), plan["seed"], plan["train"]
        params, pre, extra = plan.get("params"), plan.get("pretrain", {}), plan.get("screen")
    key = trial_run_key(spec, candidate, seed, train, pre)
    if plan is None:  # a search funnel's kept candidate: its screen columns
        extra = spec.screens.get(key)
    old = ray_get(ledger.reusable.remote(key)) if plan is None else None
    if old is not None:  # the same work was done before: reuse its row
        row = {**old, "trial_id": trial_id, "reused_from": old["trial_id"], "mode": spec.mode}
        report(
            {
                **measured_objectives(row, spec.objectives),
                "status": row["status"],
                "_row": _json(row),
            }
        )
        return
    run_trial(
        spec,
        candidate,
        trial_id=trial_id,
        seed=seed,
        train_overrides=train,
        pretrain_overrides=pre,
        report=report,
        checkpoint=ckpt_dir / "train.pt",
        params=params,
        latency=_latency_client(spec),
        extra=extra,
    )


def _invalid(spec: TrialSpec, trial_id: str, params: dict, error: Exception) -> dict:
    """The final report of a suggested point that is no valid candidate."""
    row = {
        "campaign": spec.campaign,
        "mode": spec.mode,
        "trial_id": trial_id,
        "status": "infeasible",
        "reason": f"invalid candidate: {error}",
        "epochs": 0,
        **{f"param.{k}": v for k, v in params.items()},
    }
    return {"status": "infeasible", "_row": _json(row)}


def _latency_client(spec: TrialSpec):
    """Ask the campaign's latency service (None when latency is off or timed in the trial)."""
    if not spec.services.get("latency"):
        return None
    from nas.campaign.services import lookup

    service = lookup(spec.services["latency"])
    return lambda candidate: ray_get(service.measure.remote(candidate.to_dict()))


def ray_get(ref):
    import ray

    return ray.get(ref)


def _json(row: dict) -> str:
    return json.dumps(row, default=str)


def trainable_with_resources(spec: TrialSpec, space: Space | None, runner: Runner):
    """The trainable with what every trial shares, and the runner's resources per trial."""
    from ray import tune

    fn = tune.with_parameters(_trainable, spec=spec, space=space)
    return tune.with_resources(fn, {"cpu": runner.cpus_per_trial, "gpu": runner.gpus_per_trial})
