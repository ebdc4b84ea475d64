"""One campaign trial, independent of Ray: build -> fast cost + constraints -> measure (deploy
form) -> train with a report per epoch -> the final row.

``run_trial`` never raises for what a trial can do wrong (infeasible, diverged, out of memory,
any exception): the status and reason go into the row, so a failing trial never stops a campaign.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.device import tune_host_allocator
from nas.errors import is_oom
from nas.space.candidate import Candidate
from nas.vocab import COST_COLUMNS, METRIC_COLUMNS, STATUSES

__all__ = ["STATUSES", "TrialSpec", "measured_objectives", "run_trial", "screened_row"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of a campaign shares (travels to the workers once)."""

    campaign: str
    mode: str
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    pretrain: dict = field(default_factory=dict)  # the space's pretrain: section
    objectives: dict = field(default_factory=dict)
    constraints: dict = field(default_factory=dict)
    latency_inline: bool = True  # time inside the trial (it owns its device)
    threads: int = 1
    device: str = "cpu"
    services: dict = field(default_factory=dict)  # Ray actor names: latency, ledger
    latency: dict = field(default_factory=dict)  # protocol settings: batch, dtype, channels_last
    latency_off: bool = False  # the runner's ``latency: off``: no latency column
    # the candidate timed in the same rounds (Candidate.to_dict(); {}: none) and, when the runner
    # named one (or ``off``), what names it in the run key (None: the space's base, the default)
    latency_reference: dict = field(default_factory=dict)
    latency_reference_key: str | None = None
    latency_model: dict = field(default_factory=dict)  # mode predict: LatencyModel.to_json()
    memory_batch: int | None = None  # training memory at this batch (default: the train batch)
    measure: dict = field(default_factory=dict)  # the space's measure: section (proxies, ERF)
    screens: dict = field(default_factory=dict)  # search funnel: run key -> kept screen columns


def measured_objectives(row: Mapping[str, Any], objectives: Mapping[str, str]) -> dict[str, float]:
    """The objective values a row really has: every one of a finished (ok) trial; of any other
    trial only the measured costs (an untrained candidate has no accuracy). Never a stand-in."""
    trained = METRIC_COLUMNS if row.get("status") != "ok" else ()
    return {k: float(row[k]) for k in objectives if k not in trained and row.get(k) is not None}


def run_key(
    candidate: Candidate,
    seed: int,
    train: Mapping[str, Any],
    data: Mapping[str, Any],
    pretrain: Mapping[str, Any] | None = None,
    measurement: Mapping[str, Any] | None = None,
) -> str:
    """Identity of the work: candidate + seed + training budget + data (dedupe across runs), the
    pre-training settings when there is pre-training, and the measurement settings that differ
    from the defaults (``measurement_settings``). Keys without either are unchanged."""
    work = [candidate.to_json(), seed, dict(train), dict(data)]
    if pretrain and pretrain.get("method", "none") != "none":
        work.append(dict(pretrain))
    if measurement:
        work.append({"measurement": dict(measurement)})
    blob = json.dumps(work, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def trial_run_key(
    spec: TrialSpec,
    candidate: Candidate,
    seed: int,
    train_overrides: Mapping[str, Any] | None,
    pretrain_overrides: Mapping[str, Any] | None = None,
) -> str:
    """The run key of a trial of this campaign (what ``run_trial`` writes into its row)."""
    train = _train_cfg(spec, seed, train_overrides)
    pretrain = _pretrain_cfg(spec, pretrain_overrides)
    return run_key(candidate, seed, train, spec.data, pretrain, measurement_settings(spec))


def measurement_settings(spec: TrialSpec) -> dict[str, Any]:
    """The campaign's measurement settings that differ from the defaults: the latency protocol
    (or ``latency: off``), the memory batch, the ``measure:`` section. Part of a trial's run key,
    so a campaign grown under other settings measures again instead of reusing rows measured
    otherwise; default settings add nothing (the keys of earlier campaigns stand)."""
    from nas.campaign.analysis import measure_settings
    from nas.campaign.runner import TIMING_KEYS, Runner
    from nas.measure.latency import LatencyProtocol
    from nas.settings import MEASURE_DEFAULTS

    protocol = {k: getattr(LatencyProtocol, k) for k in TIMING_KEYS}
    defaults = protocol | Runner().latency_settings()
    out: dict[str, Any] = {"latency": "off"} if spec.latency_off else {}
    out |= {f"latency.{k}": v for k, v in spec.latency.items() if defaults.get(k) != v}
    if spec.latency_reference_key is not None and not spec.latency_off:
        out["latency.reference"] = spec.latency_reference_key
    if spec.latency_model:
        blob = json.dumps(spec.latency_model, sort_keys=True)
        out["latency.model"] = hashlib.sha1(blob.encode()).hexdigest()[:16]
    if spec.memory_batch is not None:
        out["memory_batch"] = spec.memory_batch
    measure = measure_settings(spec.measure)
    same = {k for k, v in measure.items() if json.dumps(v) == json.dumps(MEASURE_DEFAULTS.get(k))}
    return out | {f"measure.{k}": v for k, v in measure.items() if k not in same}


def _pretrain_cfg(spec: TrialSpec, overrides: Mapping[str, Any] | None) -> dict:
    return {**spec.pretrain, **dict(overrides or {})}


def _train_cfg(spec: TrialSpec, seed: int, train_overrides: Mapping[str, Any] | None) -> dict:
    return {**spec.train, **dict(train_overrides or {}), "seed": seed, "device": spec.device}


def planned_epochs(train: Mapping[str, Any]) -> int:
    """The epochs a trial trains for: its ``epochs`` setting (0: measure only), else the
    trainer's default."""
    from nas.train.trainer import TrainConfig

    epochs = train.get("epochs")
    return int(TrainConfig.epochs if epochs is None else epochs)


def _status_of(exc: BaseException) -> str:
    oom = isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or is_oom(str(exc))
    return "oom" if oom else "error"


def run_trial(
    spec: TrialSpec,
    candidate: Candidate,
    *,
    trial_id: str,
    seed: int,
    params: Mapping[str, Any] | None = None,
    train_overrides: Mapping[str, Any] | None = None,
    pretrain_overrides: Mapping[str, Any] | None = None,
    report: Callable[[dict], None] | None = None,
    checkpoint: str | Path | None = None,
    latency: Callable[[Candidate], dict] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one trial and return its row. ``report`` gets every epoch's metrics together with
    every measured objective and the cost columns (OptunaSearch reads the last report).
    ``latency`` times the candidate elsewhere (the campaign's latency service) before training;
    without it, latency is timed here when ``spec.latency_inline``, else not at all. With
    pre-training (``pretrain.method``), the network is pre-trained first (its checkpoint is
    ``pretrain.pt`` beside ``checkpoint``) and fine-tuned from the pre-trained encoder. ``extra``:
    columns the row starts with (a funnel's screen values)."""
    started = time.time()
    train_cfg = _train_cfg(spec, seed, train_overrides)
    pre_cfg = _pretrain_cfg(spec, pretrain_overrides)
    row = _new_row(spec, candidate, trial_id, seed, train_cfg, params, started, pre_cfg)
    row.update(extra or {})
    report = report or (lambda metrics: None)
    try:
        if _measure(spec, candidate, row, latency):
            _train(spec, candidate, (train_cfg, pre_cfg), row, report, checkpoint)
    except Exception as e:  # noqa: BLE001 - recorded in the row, the campaign goes on
        row.update(status=_status_of(e), reason=f"{type(e).__name__}: {e}")
        log.debug("trial %s failed:\n%s", trial_id, traceback.format_exc())
    row["finished_at"] = time.time()
    row["wall_s"] = row["finished_at"] - started
    report(
        {
            **measured_objectives(row, spec.objectives),
            **_numeric_costs(row),
            "done": True,
            "status": row["status"],
            "_row": json.dumps(row, default=str),
        }
    )
    return row


def _measure(spec: TrialSpec, candidate: Candidate, row: dict, latency) -> bool:
    """Fast cost, measurement (deploy form) and constraints into the row; whether to train."""
    from nas.measure import (
        LatencyProtocol,
        check_constraints,
        cost_columns,
        fast_cost,
        measure_candidate,
    )

    costs = cost_columns(fast_cost(candidate))
    row.update(costs)
    violations = check_constraints(costs, spec.constraints)
    settings = {"threads": spec.threads, **spec.latency}
    proto = LatencyProtocol(device=spec.device, image_size=candidate.image_size, **settings)
    batch = spec.memory_batch or int(spec.train.get("batch_size", 128))
    ref = spec.latency_reference
    measured = measure_candidate(
        candidate,
        proto=proto,
        latency=spec.latency_inline,
        memory_batch=batch,
        reference=Candidate.from_dict(ref) if ref else None,
    )
    row.update({k: v for k, v in measured.items() if k not in ("status", "error")})
    row["latency_source"] = "inline" if spec.latency_inline else None
    if measured["status"] != "ok":
        row.update(cost_columns(measured), status=measured["status"], reason=measured["error"])
        return False
    if latency is not None and not spec.latency_inline:
        row.update(latency(candidate))
    if spec.latency_model:
        from nas.measure.latency_fit import predicted_columns

        row.update(
            predicted_columns(spec.latency_model, candidate, proto), latency_source="predict"
        )
    row.update(cost_columns(row))
    violations += check_constraints(cost_columns(row), spec.constraints)
    if violations:
        row.update(status="infeasible", reason="; ".join(dict.fromkeys(violations)))
        return False
    return True


def screened_row(spec: TrialSpec, plan: Mapping[str, Any], trial_id: str, values: Mapping) -> dict:
    """The row of a planned candidate that a funnel's pre-screen left out (never trained)."""
    c = Candidate.from_dict(plan["candidate"])
    train_cfg = _train_cfg(spec, plan["seed"], plan["train"])
    pre_cfg = _pretrain_cfg(spec, plan.get("pretrain"))
    now = time.time()
    row = _new_row(spec, c, trial_id, plan["seed"], train_cfg, plan.get("params"), now, pre_cfg)
    row.update(values, status="screened", reason=values.get("screen_note"), finished_at=now)
    row["wall_s"] = values.get("screen_s")
    return row


def _new_row(
    spec, candidate, trial_id, seed, train_cfg, params, started, pre_cfg
) -> dict[str, Any]:
    """A trial's row before anything is known: identity, architecture and settings."""
    from nas.pretrain.loop import PretrainConfig

    return {
        "campaign": spec.campaign,
        "mode": spec.mode,
        "trial_id": trial_id,
        "candidate_id": candidate.id,
        "seed": seed,
        "status": "error",
        "reason": None,
        "run_key": run_key(
            candidate, seed, train_cfg, spec.data, pre_cfg, measurement_settings(spec)
        ),
        "epochs": 0,
        **dict.fromkeys(("val_acc", "val_acc_best", "val_loss", "train_loss")),
        "started_at": started,
        **{f"arch.{k}": v for k, v in candidate.to_params().items()},
        **{f"train.{k}": v for k, v in train_cfg.items()},
        **PretrainConfig.from_dict(pre_cfg).columns(),
        **({f"param.{k}": v for k, v in params.items()} if params else {}),
    }


def _numeric_costs(row: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(row[k]) for k in COST_COLUMNS if row.get(k) is not None}


def _train(
    spec: TrialSpec, candidate: Candidate, configs: tuple, row: dict, report, checkpoint
) -> None:
    from nas.campaign.analysis import (
        erf_columns,
        featdiv_columns,
        init_proxies,
        measure_settings,
    )
    from nas.models.build import build_model
    from nas.pretrain.loop import PretrainConfig
    from nas.train import TrainConfig, train
    from nas.train.data import DataConfig, load_data

    if planned_epochs(configs[0]) == 0:
        _measure_only(spec, candidate, configs[0], row)
        return
    cfg = TrainConfig.from_dict(configs[0], source="train")
    pre_cfg = PretrainConfig.from_dict(configs[1], source="pretrain")
    data_cfg = DataConfig.from_dict(
        {**spec.data, "image_size": candidate.image_size}, source="data"
    )
    data = load_data(data_cfg).with_channels(candidate.in_chans)
    tune_host_allocator()
    torch.set_num_threads(max(1, spec.threads))
    torch.manual_seed(cfg.seed)
    model = build_model(candidate)
    costs = _numeric_costs(row)
    settings = measure_settings(spec.measure)
    row.update(init_proxies(model, data, settings, seed=cfg.seed, num_classes=data.num_classes))
    if pre_cfg.method != "none":
        pre_ckpt = Path(checkpoint).with_name("pretrain.pt") if checkpoint else None
        encoder = _pretrain(candidate, data, pre_cfg, cfg, row, report, pre_ckpt, costs)
        if encoder is None:
            return
        model.load_state_dict(encoder, strict=True)

    history: list[dict] = []
    t0 = time.perf_counter()

    def on_epoch(metrics: dict) -> None:
        history.append(metrics)
        _record(row, history, time.perf_counter() - t0)
        keep = {**costs, **metrics}  # every measured objective, in every report
        # the row so far travels with every report: a scheduler (ASHA) may stop the trial here
        partial = {**row, "status": "ok", "finished_at": time.time()}
        report({**keep, "_row": json.dumps(partial, default=str), "_partial": True})

    result = train(model, data, cfg, report=on_epoch, checkpoint=checkpoint)
    _record(row, result.history, time.perf_counter() - t0)
    row["status"], row["reason"] = result.status, result.reason or None
    if result.status == "ok":
        row.update(erf_columns(model, data, settings))
        row.update(featdiv_columns(model, data, settings))


def _measure_only(spec: TrialSpec, candidate: Candidate, train_cfg: Mapping, row: dict) -> None:
    """``train.epochs: 0``: the zero-cost proxies at init when the space asks for them, no
    training. The row is ok with 0 epochs and no accuracy or loss (never a stand-in)."""
    from nas.campaign.analysis import init_proxies, measure_settings
    from nas.models.build import build_model
    from nas.train.data import DataConfig, load_data

    settings = measure_settings(spec.measure)
    if settings["proxies"]:
        data_cfg = {**spec.data, "image_size": candidate.image_size}
        data = load_data(DataConfig.from_dict(data_cfg, source="data"))
        data = data.with_channels(candidate.in_chans)
        torch.set_num_threads(max(1, spec.threads))
        torch.manual_seed(int(train_cfg.get("seed", 0)))
        model = build_model(candidate)
        seed, classes = int(train_cfg.get("seed", 0)), data.num_classes
        row.update(init_proxies(model, data, settings, seed=seed, num_classes=classes))
    row.update(status="ok", reason=None)


def _pretrain(candidate, data, pre_cfg, cfg, row, report, checkpoint, costs) -> dict | None:
    """The pre-training phase: its columns into the row, a report (with the checkpoint) per
    epoch; the encoder's weights, or None when it diverged (the row says so)."""
    from nas.pretrain.loop import build_fcmae, pretrain

    t0 = time.perf_counter()

    def on_epoch(metrics: dict) -> None:
        if metrics["pretrain_epoch"] == 0:  # before the first step: the reference loss
            row["pretrain_val_loss_init"] = metrics["pretrain_val_loss"]
            return
        row.update(metrics, pretrain_s=time.perf_counter() - t0)  # this run's, until the end
        partial = {**row, "status": "error", "reason": "stopped during pre-training"}
        report({**costs, **metrics, "_row": json.dumps(partial, default=str), "_partial": True})

    torch.manual_seed(cfg.seed)
    fcmae = build_fcmae(candidate, pre_cfg)
    result = pretrain(fcmae, data, pre_cfg, cfg, report=on_epoch, checkpoint=checkpoint)
    row["pretrain_resumed_at"] = result.start_epoch
    if result.history:  # the epochs' own times: right across a resume as well
        row.update(result.history[-1])
        row["pretrain_s"] = sum(h["pretrain_epoch_s"] for h in result.history)
    if result.status != "ok":
        row["status"], row["reason"] = result.status, result.reason
        return None
    return fcmae.encoder_state_dict()


def _record(row: dict, history: list[dict], train_s: float) -> None:
    """Training results so far into the row."""
    row["train_s"] = train_s
    row["epochs"] = len(history)
    if history:
        last = history[-1]
        row.update(
            {k: last[k] for k in ("val_acc", "val_loss", "train_loss", "epoch_s", "images_per_s")}
        )
        row["val_acc_best"] = max(h["val_acc"] for h in history)
        row["history"] = [{k: round(float(v), 6) for k, v in h.items()} for h in history]
