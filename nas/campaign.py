"""Campaigns as Ray Tune experiments: survey, search and ablate; one campaign table; resume.

The driver plans the trials (survey/ablate) or hands Optuna a define-by-run space (search), runs
``tune.Tuner`` with a function trainable (``_trainable``) on a local Ray or a cluster, and a
driver-side callback (``TableCallback``) writes each trial's row into
``results/<campaign>/trials.parquet`` as it finishes. ``ray`` and ``optuna`` are imported lazily.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from nas.candidate import Candidate, CandidateError, load_candidate
from nas.errors import UserError
from nas.runner import Runner, load_runner
from nas.space import Space, load_space
from nas.table import CampaignTable
from nas.trial import TrialSpec, objective_defaults, run_trial, trial_run_key

__all__ = ["plan_survey", "plan_ablation", "run_campaign", "resume_campaign"]

log = logging.getLogger(__name__)
MODES = ("survey", "search", "ablate")
MANIFEST = "campaign.json"


# ---------------------------------------------------------------------- planning (no Ray)
def plan_survey(space: Space, n: int, seed: int) -> tuple[list[dict], dict]:
    """N distinct random candidates inside the params/MACs constraints (fast cost path)."""
    from nas.cost import FAST_COLUMNS, fast_constraint_check

    fast = {k: v for k, v in space.constraints.items() if k in FAST_COLUMNS}
    check = fast_constraint_check(fast) if fast else (lambda c: True)
    samples, stats = space.sample_distinct(
        n, np.random.default_rng(seed), accept=lambda s: check(s.candidate)
    )
    distinct = len(samples) + stats["rejected"]
    stats["acceptance_rate"] = len(samples) / max(distinct, 1)
    return [_plan(s.candidate, seed, s.train, params=s.params) for s in samples], stats


def plan_ablation(
    space: Space,
    baseline: Candidate,
    axes: list[str],
    seeds: int,
    seed: int,
    *,
    factorial: bool = False,
) -> list[dict]:
    """Baseline + one trial per axis value (everything else fixed), ``seeds`` seeds each; or the
    full factorial over the axes."""
    values = {axis: _axis_values(space, axis) for axis in axes}
    points: list[tuple[str, Any, dict]] = [("baseline", None, {})]
    if factorial:
        import itertools

        for combo in itertools.product(*values.values()):
            points.append(("factorial", json.dumps(combo), dict(zip(axes, combo))))
    else:
        for axis, vals in values.items():
            points += [(axis, v, {axis: v}) for v in vals]
    plans, seen = [], set()
    for axis, value, override in points:
        try:
            c = Candidate.from_params(override, base=baseline) if override else baseline
        except CandidateError as e:
            log.warning("ablation point %s=%s skipped: %s", axis, value, e)
            continue
        for r in range(seeds):  # a point equal to the baseline is the baseline's trial
            if (c.id, seed + r) not in seen:
                seen.add((c.id, seed + r))
                plans.append(_plan(c, seed + r, {}, axis=axis, axis_value=value))
    return plans


def _axis_values(space: Space, axis: str) -> list:
    def matches(name: str) -> bool:  # "stage.kernel" also names the per-stage dims stage.<i>.kernel
        parts = name.split(".")
        return name == axis or (
            len(parts) == 3 and parts[0] == "stage" and axis == f"stage.{parts[2]}"
        )

    names = [d for d in space.dims if matches(d.name)]
    grid = next((d.grid() for d in names if d.grid() is not None and d.kind != "derive"), None)
    if not grid:
        known = sorted(
            {
                d.name if not d.name.startswith("stage.") else "stage." + d.name.split(".")[-1]
                for d in space.dims
                if d.kind in ("choice", "int") and not d.name.startswith("vars.")
            }
        )
        raise UserError(
            f"--axes: {axis!r} is not a finite dimension of {space.source}; choose from {known}"
        )
    return list(grid)


def _plan(c: Candidate, seed: int, train: dict, *, params=None, axis=None, axis_value=None) -> dict:
    return {
        "candidate": c.to_dict(),
        "seed": seed,
        "train": train,
        "axis": axis,
        "axis_value": None if axis_value is None else json.dumps(axis_value),
        "params": params,
    }


# ---------------------------------------------------------------------- the trainable (workers)
def _trainable(config: dict, spec: TrialSpec, space: Space | None, folder: str) -> None:
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    ckpt_dir = Path(tune.get_context().get_trial_dir()) / "nas_ckpt"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as d:
            for f in Path(d).iterdir():
                shutil.copy2(f, ckpt_dir / f.name)

    def report(metrics: dict) -> None:
        # an epoch report: checkpoint it
        if "epoch" in metrics and (ckpt_dir / "train.pt").exists():
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(ckpt_dir)))
        else:
            tune.report(metrics)

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


class _DefineByRun:
    """Optuna define-by-run space (picklable, for Tuner.restore): suggests every dimension and
    returns the fixed and derived values as constants."""

    def __init__(self, space: Space):
        self.space = space
        self.constants = {d.name for d in space.dims if d.kind in ("fixed", "derive")}

    def __call__(self, trial) -> dict:
        values = self.space.suggest(trial)
        return {k: v for k, v in values.items() if k in self.constants}


def _optuna_storage(folder: Path):
    """The study lives in ``<campaign>/optuna.log`` (a journal file: open it with
    ``optuna-dashboard``), so a search can be watched live and inspected afterwards."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(folder / "optuna.log")))


def _sampler(name: str, seed: int):
    import optuna

    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    return samplers[name]()


# ---------------------------------------------------------------------- the driver
def init_ray(runner: Runner) -> None:
    """Start a local Ray or connect to the runner's cluster; a clear error if that fails."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault(
        "TUNE_GLOBAL_CHECKPOINT_S", "2"
    )  # small: a killed driver resumes in-flight trials
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    if ray.is_initialized():
        return
    address = runner.effective_address
    kwargs: dict[str, Any] = dict(
        include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local Ray (stack.md T2)
        kwargs.update(
            num_cpus=runner.num_cpus or os.cpu_count(),
            object_store_memory=runner.object_store_mb * 2**20,
        )
    _check_reachable(address, runner)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, TimeoutError) as e:
        raise UserError(
            f"runner {runner.name!r}: cannot reach Ray at {address!r}: {str(e).splitlines()[0]}"
        ) from None


def _check_reachable(address: str | None, runner: Runner) -> None:
    """Fail within ``connect_timeout_s`` (not Ray's long retry loop) when a host:port is unreachable."""
    import socket

    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"runner {runner.name!r}: address: expected 'auto', 'HOST:PORT' or 'ray://HOST:PORT', got {address!r}"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=runner.connect_timeout_s):
            pass
    except OSError as e:
        raise UserError(
            f"runner {runner.name!r}: cannot reach the Ray cluster at {address} within {runner.connect_timeout_s:g} s "
            f"({e.strerror or e})"
        ) from None


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
    folder = Path(results).resolve() / name
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a folder")
    parent = folder.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():  # fail before Ray starts, not after
        raise UserError(f"{folder}: cannot create the campaign folder ({parent} is not a folder)")
    table = CampaignTable(folder)  # reads an existing table; writes nothing
    done = set() if retrain else table.done_keys()
    spec = _spec(space, runner, name, mode, dict(train_overrides or {}))
    stats: dict[str, Any] = {}
    if mode == "survey":
        plans, stats = plan_survey(space, n, seed)
    elif mode == "ablate":
        base = load_candidate(baseline) if baseline else space.base
        base = Candidate.from_params(
            {"num_classes": space.base.num_classes, "image_size": space.base.image_size}, base=base
        )
        plans = plan_ablation(
            space, base, axes or _default_axes(space), seeds, seed, factorial=factorial
        )
    else:
        plans = []
    for plan in plans:
        plan["run_key"] = trial_run_key(
            spec, Candidate.from_dict(plan["candidate"]), plan["seed"], plan["train"]
        )
    skipped = sum(p["run_key"] in done for p in plans)
    plans = [p for p in plans if p["run_key"] not in done]
    stats["skipped_done"] = skipped
    if plans or mode == "search":
        init_ray(runner)  # before anything is written: an unreachable cluster leaves no trace
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"{folder}: cannot create the campaign folder ({e.strerror or e})"
        ) from None
    shutil.copy2(space_path, folder / "space.yaml")
    if runner_path:
        shutil.copy2(runner_path, folder / "runner.yaml")
    experiment = f"{mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = Path(runner.storage_path).resolve() if runner.storage_path else folder / "ray"
    manifest = {
        "campaign": name,
        "mode": mode,
        "space": str(Path(space_path).resolve()),
        "runner": runner_path,
        "experiment": str(storage / experiment),
        "seed": seed,
        "n": n,
        "planned": len(plans) if plans else n,
        "stats": stats,
        "spec": asdict(spec),
        "started_at": time.time(),
    }
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


def _default_axes(space: Space) -> list[str]:
    axes = []
    for d in space.dims:
        if d.kind != "choice" or d.name.startswith(("vars.", "train.")) or d.when:
            continue
        name = "stage." + d.name.split(".")[-1] if d.name.startswith("stage.") else d.name
        if name not in axes:
            axes.append(name)
    return axes


def _trainable_with_resources(spec: TrialSpec, space: Space | None, folder: Path, runner: Runner):
    from ray import tune

    fn = tune.with_parameters(_trainable, spec=spec, space=space, folder=str(folder))
    return tune.with_resources(fn, {"cpu": runner.cpus_per_trial, "gpu": runner.gpus_per_trial})


def _tuner(mode, space, runner, spec, folder, storage, experiment, plans, n, seed):
    from ray import tune

    from nas.tune_callback import TableCallback

    search_alg = scheduler = None
    if mode == "search":
        from ray.tune.search.optuna import OptunaSearch

        if not space.objectives:
            raise UserError(f"{space.source}: objectives: search needs at least one objective")
        metrics, modes = list(space.objectives), list(space.objectives.values())
        search_alg = OptunaSearch(
            space=_DefineByRun(space),
            metric=metrics if len(metrics) > 1 else metrics[0],
            mode=modes if len(modes) > 1 else modes[0],
            sampler=_sampler(runner.sampler or space.sampler, seed),
            study_name=experiment,
            storage=_optuna_storage(folder),
        )
        if runner.scheduler:
            from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler

            epochs = int(spec.train.get("epochs", 6))
            scheduler = (
                ASHAScheduler(
                    metric="val_acc", mode="max", max_t=epochs, grace_period=1, time_attr="epoch"
                )
                if runner.scheduler == "asha"
                else HyperBandScheduler(
                    metric="val_acc", mode="max", max_t=epochs, time_attr="epoch"
                )
            )
        param_space, num_samples = None, n
    else:
        param_space, num_samples = {"plan": tune.grid_search(plans)}, 1
    return tune.Tuner(
        _trainable_with_resources(spec, space, folder, runner),
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
    from nas.tune_callback import WRITE_ERRORS

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
    from nas.model import build_model, reparameterize

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
        trainable=_trainable_with_resources(spec, space, folder, runner),
        resume_unfinished=True,
        resume_errored=True,
    )
    _fit(tuner)
    _finish(folder, spec, runner)
    return folder
