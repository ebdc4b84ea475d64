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
from dataclasses import asdict, replace
from pathlib import Path

from nas.campaign.cluster import check_fits, init_ray
from nas.campaign.funnel import Funnel, handled_keys, run_screen
from nas.campaign.latency_setup import check_latency_columns, latency_spec
from nas.campaign.plan import check_ablation, default_axes, plan_ablation, plan_survey
from nas.campaign.progress import Progress
from nas.campaign.runner import Runner, load_runner
from nas.campaign.search import make_scheduler, make_searcher
from nas.campaign.services import ServiceNames, start_services, stop_services
from nas.campaign.storage import (
    experiment_location,
    is_uri,
    prune_checkpoints,
    storage_location,
)
from nas.campaign.table import CampaignTable, campaign_space
from nas.campaign.trainable import trainable_with_resources
from nas.campaign.trial import TrialSpec, planned_epochs, trial_run_key
from nas.campaign.watch import Watch, fit
from nas.errors import UserError, blocking_file, path_component
from nas.space.candidate import Candidate, load_candidate
from nas.space.parse import load_space, portable_space_text
from nas.space.space import Space

__all__ = ["MODES", "resume_campaign", "run_campaign"]

log = logging.getLogger(__name__)
MODES = ("survey", "search", "ablate")
MANIFEST = "campaign.json"


def _spec(
    space: Space,
    runner: Runner,
    campaign: str,
    mode: str,
    train_overrides: dict,
    runner_source: str | None = None,
) -> TrialSpec:
    return TrialSpec(
        campaign=campaign,
        mode=mode,
        data=dict(space.data),
        train={**space.train, **train_overrides},
        pretrain=dict(space.pretrain),
        measure=dict(space.measure),
        objectives=dict(space.objectives),
        constraints=dict(space.constraints),
        latency_inline=runner.latency_inline(),
        latency=runner.latency_settings(),
        latency_off=runner.latency == "off",
        **latency_spec(runner, space.base, source=runner_source or "runner"),
        memory_batch=runner.memory_batch,
        threads=max(1, int(runner.cpus_per_trial)),
        device=runner.device,
    )


def _write_manifest(folder: Path, data: dict) -> None:
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, folder / MANIFEST)


def _check_measurable(space: Space, runner: Runner, funnel: Funnel | None = None) -> None:
    """An objective, constraint or funnel this runner cannot measure would fail every trial
    silently."""
    wanted = {**space.objectives, **space.constraints}
    if funnel is not None and "latency_pred_ms" in funnel.expr.names:
        wanted["latency_pred_ms"] = "min"  # the screen needs the runner's latency model too
    check_latency_columns(runner, wanted, source=str(space.source))
    if "train_peak_mb" in wanted and runner.device != "cuda":
        raise UserError(
            f"{space.source}: train_peak_mb is measured on CUDA only, runner {runner.name!r} "
            "trains on the CPU; use train_saved_mb (bytes saved for backward) instead"
        )


def _campaign_folder(results: str, name: str) -> Path:
    """The campaign folder; fails before Ray starts when it cannot be created."""
    folder = Path(results).resolve() / path_component(name, key="--name")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a folder")
    blocker = blocking_file(folder)
    if blocker is not None:
        raise UserError(f"{folder}: cannot create the campaign folder ({blocker} is not a folder)")
    return folder


def _create_folder(folder: Path, space_path: str, runner_path: str | None) -> None:
    """Create the campaign folder and copy the space (and runner) into it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"{folder}: cannot create the campaign folder ({e.strerror or e})"
        ) from None
    (folder / "space.yaml").write_text(portable_space_text(space_path))  # stands alone
    if runner_path:
        shutil.copy2(runner_path, folder / "runner.yaml")


def _manifest(name, mode, space_path, runner_path, experiment: str, spec: TrialSpec) -> dict:
    return {
        "campaign": name,
        "mode": mode,
        "space": str(Path(space_path).resolve()),
        "runner": runner_path,
        "experiment": str(experiment),
        "spec": asdict(spec),
        "started_at": time.time(),
    }


def _plans(
    mode: str, space: Space, *, n, seed, train_seed, baseline, axes, seeds, factorial, funnel=None
):
    """(planned trials, planning stats) of a survey or an ablation; none for a search (but the
    candidates to screen of a funnel, drawn as a survey draws them, with the seed a search trial
    trains with: ``train_seed``)."""
    if funnel is not None:
        if mode == "ablate":
            raise UserError("--prescreen: a funnel screens a survey or a search, not an ablation")
        if mode == "search" and funnel.keep > n:
            raise UserError(f"--keep: {funnel.keep} kept candidates exceed the search's -n {n}")
        return plan_survey(space, funnel.prescreen, seed, train_seed if mode == "search" else None)
    if mode == "survey":
        return plan_survey(space, n, seed)
    if mode == "ablate":
        base = load_candidate(baseline) if baseline else space.base
        base = Candidate.from_params(
            {"num_classes": space.base.num_classes, "image_size": space.base.image_size}, base=base
        )
        axes = axes or default_axes(space)
        plans = plan_ablation(space, base, axes, seeds, seed, factorial=factorial)
        stopped = check_ablation(space, base, plans, baseline or f"the base of {space.source}")
        for axis, value, why in stopped:
            log.warning(
                "ablation variant %s=%s is infeasible (%s): it will not train", axis, value, why
            )
        return plans, {"infeasible_variants": [list(v) for v in stopped]}
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
    progress: bool = True,
    funnel: Funnel | None = None,
) -> Path:
    """Plan and run one campaign (or grow an existing one); returns the campaign folder.
    ``progress``: log one line per finished trial and a summary to ``nas.progress``. ``funnel``:
    screen candidates, train the best (``nas.campaign.funnel``)."""
    if mode not in MODES:
        raise UserError(f"mode: expected one of {list(MODES)}, got {mode!r}")
    space, runner = load_space(space_path), load_runner(runner_path)
    _check_measurable(space, runner, funnel)
    folder = _campaign_folder(results, name)
    table = CampaignTable(folder)  # reads an existing table; writes nothing
    done = set() if retrain else table.done_keys() | (handled_keys(table.df) if funnel else set())
    spec = _spec(space, runner, name, mode, dict(train_overrides or {}), runner_path)
    how = dict(baseline=baseline, axes=axes, seeds=seeds, factorial=factorial, funnel=funnel)
    plans, stats = _plans(mode, space, n=n, seed=seed, train_seed=spec.train.get("seed", 0), **how)
    plans = _pending(plans, spec, done, stats)
    if plans or mode == "search":
        init_ray(runner)  # before anything is written: an unreachable cluster leaves no trace
        check_fits(runner)
    _create_folder(folder, space_path, runner_path)
    run = f"{mode}-{time.strftime('%Y%m%d-%H%M%S')}"  # the Ray experiment's name
    location = experiment_location(runner.storage_path, folder, run)
    manifest = _manifest(name, mode, space_path, runner_path, location, spec)
    planned = len(plans) if plans else (n if mode == "search" else 0)
    manifest.update(seed=seed, n=n, planned=planned, stats=stats)
    if mode != "search" and not plans:
        log.info("nothing to run: every planned trial is already in the table")
        _write_manifest(folder, manifest)
        return folder
    _write_manifest(folder, manifest)
    points: list[dict] = []
    if funnel is not None:  # the kept candidates: the survey's plans or the search's first points
        spec, plans, points = _funnel(funnel, space, spec, runner, plans, folder, manifest, run)
        if mode == "survey" and not plans:
            return folder
    spec = _with_services(spec, runner, folder, table, run=run, reuse=not retrain)
    watch = _watch(runner, spec, manifest["planned"] if progress else None)
    try:
        tuner = _tuner(mode, space, runner, spec, folder, run, plans, n, seed, watch, points)
        fit(tuner, watch, folder)
    finally:
        stop_services(ServiceNames(**spec.services))
    prune_checkpoints(location)
    return folder


def _pending(plans: list[dict], spec: TrialSpec, done: set[str], stats: dict) -> list[dict]:
    """The plans whose work (run key) is not done yet; counts the others in ``stats``."""
    for plan in plans:
        c = Candidate.from_dict(plan["candidate"])
        plan["run_key"] = trial_run_key(spec, c, plan["seed"], plan["train"], plan["pretrain"])
    stats["skipped_done"] = sum(p["run_key"] in done for p in plans)
    return [p for p in plans if p["run_key"] not in done]


def _funnel(
    funnel, space, spec, runner, plans, folder, manifest, run
) -> tuple[TrialSpec, list, list]:
    """Screen the drawn candidates (rows for the left-out ones); the kept ones become the
    survey's plans, or the first points of the search (whose trials find their screen columns
    in the spec). Returns (spec, plans, search points)."""
    kept, figures = run_screen(
        funnel, plans, spec, runner.cpus_per_trial, CampaignTable(folder), run
    )
    manifest["stats"]["funnel"] = figures
    if spec.mode == "search":
        points = [space.optuna_params(p["params"]) for p in kept]
        spec = replace(spec, screens={p["run_key"]: p["screen"] for p in kept})
        manifest["spec"] = asdict(spec)  # a resumed search attaches them too
        kept = []
    else:
        manifest["planned"] = len(kept)
        points = []
    _write_manifest(folder, manifest)
    log.info(
        "funnel: screened %d candidates in %.1f s, kept %d by %s",
        figures["screened"], figures["screen_wall_s"], figures["kept"], funnel.by,
    )  # fmt: skip
    return spec, kept, points


def _with_services(
    spec: TrialSpec, runner: Runner, folder: Path, table, *, run: str, reuse: bool = True
) -> TrialSpec:
    """Start the campaign's ledger and latency service; the spec names them for the trials.
    ``reuse``: finished rows may stand in for identical work (not with ``--retrain``)."""
    from nas.campaign.table import records

    rows = records(table.df) if len(table.df) else []
    names = start_services(
        runner,
        campaign=spec.campaign,
        run=f"{run}-{os.getpid()}",
        objectives=spec.objectives,
        table_rows=rows,
        reuse=reuse,
        reference=spec.latency_reference,
    )
    return replace(spec, services={"latency": names.latency, "ledger": names.ledger})


def _watch(runner: Runner, spec: TrialSpec, planned: int | None) -> Watch:
    """The run's watch; ``planned`` None: no progress lines (``--quiet``)."""
    progress = Progress(planned, spec.objectives) if planned is not None else None
    latency = spec.services.get("latency")
    return Watch(runner, progress, epochs=planned_epochs(spec.train), latency=latency)


def _tuner(mode, space, runner, spec, folder, experiment, plans, n, seed, watch, points=()):
    from ray import tune

    from nas.campaign.callback import TableCallback

    search_alg = scheduler = None
    if mode == "search":
        search_alg = make_searcher(
            space, runner, folder=folder, study_name=experiment, seed=seed, points=list(points),
            planned=n,
        )  # fmt: skip
        scheduler = make_scheduler(runner.scheduler, planned_epochs(spec.train))
        param_space, num_samples = None, n
    else:
        param_space, num_samples = {"plan": tune.grid_search(plans)}, 1
    table = TableCallback(
        str(folder), spec.campaign, spec.mode, ledger=spec.services["ledger"],
        progress=watch.progress, watch=watch,
    )  # fmt: skip
    return tune.Tuner(
        trainable_with_resources(spec, space, runner),
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
            storage_path=storage_location(runner.storage_path, folder),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=runner.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),  # pruned when the run ends
            callbacks=[table],
        ),
    )


def resume_campaign(
    folder: str | Path, *, progress: bool = True, experiment: str | None = None
) -> Path:
    """Continue an interrupted campaign: ``Tuner.restore`` of its last experiment (searcher state
    included) at the location recorded in ``campaign.json`` (a path or a URI); finished trials are
    not re-run, in-flight ones continue from their checkpoint. A recorded location outside the
    campaign folder and the runner's storage is refused unless given as ``experiment``."""
    from ray import tune

    folder = Path(folder).resolve()
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise UserError(
            f"{folder}: not a campaign folder (no {MANIFEST}); run nas survey|search|ablate first"
        )
    manifest = json.loads(manifest_path.read_text())
    copies = {name: folder / f"{name}.yaml" for name in ("space", "runner")}
    space = campaign_space(folder) if copies["space"].is_file() else load_space(manifest["space"])
    runner = load_runner(copies["runner"] if copies["runner"].is_file() else manifest.get("runner"))
    if experiment is None:
        experiment = manifest["experiment"]
        _check_experiment(experiment, folder, storage_location(runner.storage_path, folder))
    init_ray(runner)
    if not tune.Tuner.can_restore(experiment):
        raise UserError(f"{folder}: the Ray experiment {experiment} is missing; nothing to resume")
    check_fits(runner)
    spec = TrialSpec(**{**manifest["spec"], "services": {}})
    spec = _with_services(spec, runner, folder, CampaignTable(folder), run="resume")
    watch = _watch(runner, spec, manifest.get("planned", 0) if progress else None)
    tuner = tune.Tuner.restore(
        experiment,
        trainable=trainable_with_resources(spec, space, runner),
        resume_unfinished=True,
        resume_errored=True,
    )
    _reattach(tuner, folder, spec, watch)
    try:
        fit(tuner, watch, folder)
    finally:
        stop_services(ServiceNames(**spec.services))
    prune_checkpoints(experiment)
    return folder


def _check_experiment(experiment: str, folder: Path, storage: str) -> None:
    """The experiment ``campaign.json`` names must lie in the campaign folder or the runner's
    storage: a copied or edited campaign.json cannot make ``nas resume`` unpickle any file."""
    if is_uri(experiment):
        inside = is_uri(storage) and experiment.startswith(storage.partition("?")[0] + "/")
    else:
        path = Path(experiment).resolve()
        inside = path.is_relative_to(folder) or (
            not is_uri(storage) and path.is_relative_to(Path(storage))
        )
    if not inside:
        raise UserError(
            f"{folder / MANIFEST}: experiment: {experiment} is outside the campaign folder and "
            f"the runner's storage ({storage}); pass --experiment {experiment} to resume it anyway"
        )


def _reattach(tuner, folder: Path, spec: TrialSpec, watch: Watch) -> None:
    """The restored table callback talks to this run's ledger, progress and watch (the runner's
    settings as they are now)."""
    callbacks = tuner._local_tuner._run_config.callbacks or []  # noqa: SLF001 - no public API
    for cb in callbacks:
        if hasattr(cb, "ledger"):
            cb.folder, cb.ledger, cb.progress = str(folder), spec.services["ledger"], watch.progress
            cb.watch = watch
