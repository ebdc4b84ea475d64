"""Campaigns as Ray Tune experiments: survey, search and ablate into one campaign table; resume.

The driver plans the trials (``nas.campaign.plan``) or hands Optuna a define-by-run space
(``nas.campaign.search``), starts or joins Ray (``nas.campaign.cluster``), runs ``tune.Tuner`` with
the worker-side trainable (``nas.campaign.trainable``), and a driver-side callback
(``nas.campaign.callback``) writes each trial's row into ``results/<campaign>/trials.parquet`` as
it finishes. ``ray`` and ``optuna`` are imported lazily.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from nas.campaign.cluster import init_ray
from nas.campaign.plan import default_axes, plan_ablation, plan_survey
from nas.campaign.runner import Runner, load_runner
from nas.campaign.search import make_scheduler, make_searcher
from nas.campaign.table import CampaignTable
from nas.campaign.trainable import trainable_with_resources
from nas.campaign.trial import TrialSpec, trial_run_key
from nas.errors import UserError
from nas.space.candidate import Candidate, load_candidate
from nas.space.parse import load_space
from nas.space.space import Space

__all__ = ["MODES", "resume_campaign", "run_campaign"]

log = logging.getLogger(__name__)
MODES = ("survey", "search", "ablate")
MANIFEST = "campaign.json"


def _spec(
    space: Space, runner: Runner, campaign: str, mode: str, train_overrides: dict
) -> TrialSpec:
    return TrialSpec(
        campaign=campaign,
        mode=mode,
        data=dict(space.data),
        train={**space.train, **train_overrides},
        objectives=dict(space.objectives),
        constraints=dict(space.constraints),
        latency_inline=runner.latency_inline() and runner.latency != "off",
        threads=max(1, int(runner.cpus_per_trial)),
        device=runner.device,
    )


def _write_manifest(folder: Path, data: dict) -> None:
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, folder / MANIFEST)


def _campaign_folder(results: str, name: str) -> Path:
    """The campaign folder; fails before Ray starts when it cannot be created."""
    folder = Path(results).resolve() / name
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a folder")
    parent = folder.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{folder}: cannot create the campaign folder ({parent} is not a folder)")
    return folder


def _create_folder(folder: Path, space_path: str, runner_path: str | None) -> None:
    """Create the campaign folder and copy the space (and runner) into it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"{folder}: cannot create the campaign folder ({e.strerror or e})"
        ) from None
    shutil.copy2(space_path, folder / "space.yaml")
    if runner_path:
        shutil.copy2(runner_path, folder / "runner.yaml")


def _manifest(name, mode, space_path, runner_path, experiment: Path, spec: TrialSpec) -> dict:
    return {
        "campaign": name,
        "mode": mode,
        "space": str(Path(space_path).resolve()),
        "runner": runner_path,
        "experiment": str(experiment),
        "spec": asdict(spec),
        "started_at": time.time(),
    }


def _plans(mode: str, space: Space, *, n, seed, baseline, axes, seeds, factorial):
    """(planned trials, planning stats) of a survey or an ablation; none for a search."""
    if mode == "survey":
        return plan_survey(space, n, seed)
    if mode == "ablate":
        base = load_candidate(baseline) if baseline else space.base
        base = Candidate.from_params(
            {"num_classes": space.base.num_classes, "image_size": space.base.image_size}, base=base
        )
        axes = axes or default_axes(space)
        return plan_ablation(space, base, axes, seeds, seed, factorial=factorial), {}
    return [], {}


def run_campaign(
    mode: str,
    space_path: str,
    *,
    name: str,
    runner_path: str | None = None,
    n: int = 8,
    seed: int = 0,
    results: str = "results",
    baseline: str | None = None,
    axes: list[str] | None = None,
    seeds: int = 1,
    factorial: bool = False,
    retrain: bool = False,
    train_overrides: dict | None = None,
) -> Path:
    """Plan and run one campaign (or grow an existing one); returns the campaign folder."""
    if mode not in MODES:
        raise UserError(f"mode: expected one of {list(MODES)}, got {mode!r}")
    space, runner = load_space(space_path), load_runner(runner_path)
    folder = _campaign_folder(results, name)
    table = CampaignTable(folder)  # reads an existing table; writes nothing
    done = set() if retrain else table.done_keys()
    spec = _spec(space, runner, name, mode, dict(train_overrides or {}))
    plans, stats = _plans(
        mode, space, n=n, seed=seed, baseline=baseline, axes=axes, seeds=seeds, factorial=factorial
    )
    for plan in plans:
        plan["run_key"] = trial_run_key(
            spec, Candidate.from_dict(plan["candidate"]), plan["seed"], plan["train"]
        )
    skipped = sum(p["run_key"] in done for p in plans)
    plans = [p for p in plans if p["run_key"] not in done]
    stats["skipped_done"] = skipped
    if plans or mode == "search":
        init_ray(runner)  # before anything is written: an unreachable cluster leaves no trace
    _create_folder(folder, space_path, runner_path)
    experiment = f"{mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = Path(runner.storage_path).resolve() if runner.storage_path else folder / "ray"
    manifest = _manifest(name, mode, space_path, runner_path, storage / experiment, spec)
    manifest.update(seed=seed, n=n, planned=len(plans) if plans else n, stats=stats)
    if mode != "search" and not plans:
        log.info("nothing to run: every planned trial is already in the table")
        manifest["planned"] = 0
        _write_manifest(folder, manifest)
        return folder
    _write_manifest(folder, manifest)
    tuner = _tuner(mode, space, runner, spec, folder, storage, experiment, plans, n, seed)
    _fit(tuner)
    _finish(folder, spec, runner)
    return folder


def _tuner(mode, space, runner, spec, folder, storage, experiment, plans, n, seed):
    from ray import tune

    from nas.campaign.callback import TableCallback

    search_alg = scheduler = None
    if mode == "search":
        search_alg = make_searcher(space, runner, folder=folder, study_name=experiment, seed=seed)
        scheduler = make_scheduler(runner.scheduler, int(spec.train.get("epochs", 6)))
        param_space, num_samples = None, n
    else:
        param_space, num_samples = {"plan": tune.grid_search(plans)}, 1
    return tune.Tuner(
        trainable_with_resources(spec, space, folder, runner),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=runner.concurrency(),
            reuse_actors=runner.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=experiment,
            storage_path=str(storage),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=runner.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[TableCallback(str(folder), spec.campaign, spec.mode)],
        ),
    )


def _fit(tuner) -> None:
    """``tuner.fit()``; a failed write of the campaign table (disk full, permissions) surfaces as
    its own one-line UserError, not as Tune's wrapped traceback."""
    from nas.campaign.callback import WRITE_ERRORS

    WRITE_ERRORS.clear()
    try:
        tuner.fit()
    except Exception:
        if WRITE_ERRORS:
            raise WRITE_ERRORS[0] from None
        raise
    if WRITE_ERRORS:
        raise WRITE_ERRORS[0]


def _finish(folder: Path, spec: TrialSpec, runner: Runner) -> None:
    """Serial latency pass (one model at a time, after training) when trials shared a device."""
    from nas.measure import LatencyProtocol, measure_latency
    from nas.models.build import build_model, reparameterize

    table = CampaignTable(folder)
    if runner.latency == "off" or not len(table.df) or "latency_source" not in table.df:
        return
    pending = table.df[
        (table.df["latency_source"] == "pending")
        & table.df["status"].isin(["ok", "diverged", "infeasible"])
    ]
    for _, row in pending.iterrows():
        c = Candidate.from_row(row.to_dict())
        proto = LatencyProtocol(device=spec.device, image_size=c.image_size, threads=spec.threads)
        lat = measure_latency(reparameterize(build_model(c)), proto, key=c.id)
        table.add(
            {
                **row.to_dict(),
                **{k: lat[k] for k in ("latency_ms_p50", "latency_ms_p90", "latency_cv")},
                "warmup_iters": lat["warmup_iters"],
                "latency_source": "serial",
            }
        )


def resume_campaign(folder: str | Path) -> Path:
    """Continue an interrupted campaign: ``Tuner.restore`` of its last experiment (searcher state
    included); finished trials are not re-run, in-flight ones continue from their checkpoint."""
    from ray import tune

    folder = Path(folder).resolve()
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise UserError(
            f"{folder}: not a campaign folder (no {MANIFEST}); run nas survey|search|ablate first"
        )
    manifest = json.loads(manifest_path.read_text())
    experiment = manifest["experiment"]
    if not Path(experiment).exists():
        raise UserError(f"{folder}: the Ray experiment {experiment} is missing; nothing to resume")
    space = load_space(manifest["space"])
    runner = load_runner(manifest.get("runner"))
    spec = TrialSpec(**manifest["spec"])
    init_ray(runner)
    tuner = tune.Tuner.restore(
        experiment,
        trainable=trainable_with_resources(spec, space, folder, runner),
        resume_unfinished=True,
        resume_errored=True,
    )
    _fit(tuner)
    _finish(folder, spec, runner)
    return folder
