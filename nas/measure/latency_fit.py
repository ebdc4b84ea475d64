"""Fitting the block-level latency predictor (``nas.measure.latency_model``) on one device.

``fit_latency_model`` is independent of how time is taken: it gets ``time_parts`` (milliseconds
of each part, timed standalone on its recorded input shapes) and ``time_whole`` (milliseconds of
whole candidates). ``real_timers(proto)`` gives both on this process's device under the latency
protocol; a test gives a synthetic device whose times are known.

Adaptive sampling of the block settings: candidates are drawn from the space in batches, and a
batch's parts are timed only where they are new (a signature never timed), the candidates adding
the most new parts of the least-sampled groups first, until the time budget is spent. Whole
candidates the fit never saw then check it (Kendall tau, share within +-10%).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from nas.measure.latency import LatencyProtocol, measure_latencies, time_rounds
from nas.measure.latency_model import LatencyModel, Part, fit_groups, model_parts
from nas.measure.latency_parts import candidate_parts
from nas.space.candidate import Candidate

__all__ = [
    "candidate_parts",
    "fit_latency_model",
    "held_out_quality",
    "hooked_parts",
    "predict_candidate",
    "predicted_columns",
    "real_timers",
    "with_modules",
]

log = logging.getLogger(__name__)
TimeParts = Callable[[Sequence[Part]], list[float]]
TimeWhole = Callable[[Sequence[Candidate]], list[float]]


def _deploy(candidate: Candidate) -> torch.nn.Module:
    from nas.models.build import build_model, reparameterize

    torch.manual_seed(0)
    return reparameterize(build_model(candidate)).eval()


def _input(candidate: Candidate, proto: LatencyProtocol) -> torch.Tensor:
    x = torch.randn(proto.batch, candidate.in_chans, proto.image_size, proto.image_size)
    return x.to(memory_format=torch.channels_last) if proto.channels_last else x


def hooked_parts(candidate: Candidate, proto: LatencyProtocol) -> list[Part]:
    """The parts of ``candidate``'s deploy form as a built model calls them (with their modules,
    for timing): ``model_parts`` at the protocol's batch, input size and memory format."""
    model = _deploy(candidate)
    if proto.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model_parts(model, _input(candidate, proto))


def with_modules(candidate: Candidate, proto: LatencyProtocol, parts: Sequence[Part]) -> list[Part]:
    """``parts`` (of ``candidate_parts``) with the modules of a built deploy model, after checking
    that the model calls exactly the parts the analytic enumeration names."""
    analytic = candidate_parts(candidate, proto)
    hooked = hooked_parts(candidate, proto)
    for i in range(max(len(analytic), len(hooked))):
        a = analytic[i] if i < len(analytic) else None
        h = hooked[i] if i < len(hooked) else None
        if a is None or h is None or (a.name, a.args, a.features) != (h.name, h.args, h.features):
            raise RuntimeError(
                f"latency parts of candidate {candidate.id}: part {i} is "
                f"{a and (a.name, a.args, a.features)} by the analytic enumeration but "
                f"{h and (h.name, h.args, h.features)} in the built model"
            )
    modules = {a.signature: h.module for a, h in zip(analytic, hooked)}
    return [dataclasses.replace(p, module=modules[p.signature]) for p in parts]


def predict_candidate(model: LatencyModel, candidate: Candidate, proto: LatencyProtocol):
    """``Prediction`` of ``candidate`` (``ms`` None when a part was never fitted), from the
    Candidate alone: no module is built."""
    return model.predict_parts(candidate_parts(candidate, proto))


def predicted_columns(
    model: LatencyModel | dict[str, Any], candidate: Candidate, proto: LatencyProtocol
) -> dict[str, Any]:
    """``latency_pred_ms`` (None for a block never fitted) and ``latency_pred_flags`` (what lies
    outside the fitted range) of a row; ``model`` may be its JSON data."""
    if not isinstance(model, LatencyModel):
        model = LatencyModel.from_json(model)
    pred = predict_candidate(model, candidate, proto)
    return {"latency_pred_ms": pred.ms, "latency_pred_flags": "; ".join(pred.flags) or None}


def fit_latency_model(
    fit_candidates: Sequence[Candidate],
    check_candidates: Sequence[Candidate],
    *,
    proto: LatencyProtocol,
    time_parts: TimeParts,
    time_whole: TimeWhole,
    budget_s: float | None = None,
    calibrate: int = 8,
    batch: int = 8,
    meta: dict[str, Any] | None = None,
) -> LatencyModel:
    """Time the new parts of ``fit_candidates`` (in batches, most novel first, within
    ``budget_s``), fit the table and the groups, calibrate on ``calibrate`` of the fitted whole
    candidates and check on ``check_candidates`` (never fitted)."""
    start, table, samples, fitted = time.perf_counter(), {}, [], []
    per_group: dict[str, int] = {}
    for i in range(0, len(fit_candidates), batch):
        if budget_s is not None and time.perf_counter() - start > budget_s and fitted:
            break
        found = [(c, candidate_parts(c, proto)) for c in fit_candidates[i : i + batch]]
        found.sort(key=lambda cp: -_novelty(cp[1], table, per_group))
        for c, parts in found:
            new = list({p.signature: p for p in parts if p.signature not in table}.values())
            new = with_modules(c, proto, new) if new else new
            for part, ms in zip(new, time_parts(new) if new else []):
                table[part.signature] = ms
                samples.append((part, ms))
                per_group[part.group] = per_group.get(part.group, 0) + 1
            fitted.append((c, parts))
    model = LatencyModel(table, fit_groups(samples), meta=dict(meta or {}))
    calib = fitted[:: max(1, len(fitted) // max(1, calibrate))][:calibrate]
    sums = [model.predict_parts(parts).parts_ms for _, parts in calib]
    wholes = time_whole([c for c, _ in calib])
    model.alpha, model.beta = _calibration(sums, wholes)
    measured = time_whole(check_candidates) if check_candidates else []
    preds = [predict_candidate(model, c, proto).ms for c in check_candidates]
    model.meta |= {
        "fit_candidates": len(fitted),
        "parts_timed": len(table),
        "groups": len(model.groups),
        "fit_s": time.perf_counter() - start,
        "held_out": held_out_quality(preds, measured) if measured else None,
    }
    return model


def _novelty(parts: Sequence[Part], table: dict, per_group: dict) -> float:
    """New parts, weighted towards groups sampled least (adaptive sampling)."""
    return sum(1 / (1 + per_group.get(p.group, 0)) for p in parts if p.signature not in table)


def _calibration(sums: Sequence[float], wholes: Sequence[float]) -> tuple[float, float]:
    """``whole = alpha * sum + beta`` by least squares (alpha 1, beta the mean gap for < 3)."""
    if len(sums) < 3:
        gaps = [w - s for s, w in zip(sums, wholes)]
        return 1.0, statistics.fmean(gaps) if gaps else 0.0
    a = np.vstack([sums, np.ones(len(sums))]).T
    (alpha, beta), *_ = np.linalg.lstsq(a, np.array(wholes, dtype=float), rcond=None)
    return float(alpha), float(beta)


def held_out_quality(predicted: Sequence[float | None], measured: Sequence[float]) -> dict:
    """Kendall tau, share within +-10% and median absolute relative error over the candidates
    the predictor could predict (``unpredicted``: those it could not; a block never fitted)."""
    pairs = [(p, m) for p, m in zip(predicted, measured) if p is not None]
    errors = [abs(p - m) / m for p, m in pairs]
    tau = kendall_tau(*map(list, zip(*pairs))) if len(pairs) >= 2 else math.nan
    return {  # None where there is nothing to compute (plain JSON has no NaN)
        "n": len(pairs),
        "unpredicted": len(predicted) - len(pairs),
        "kendall_tau": None if math.isnan(tau) else tau,
        "within_10pct": sum(e <= 0.10 for e in errors) / len(errors) if errors else None,
        "median_abs_rel_error": statistics.median(errors) if errors else None,
    }


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b of two equally long sequences (ties allowed; nan if one is constant)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"kendall_tau: expected two sequences of equal length >= 2, got {a}, {b}")
    s = n_a = n_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da = (a[i] > a[j]) - (a[i] < a[j])
            db = (b[i] > b[j]) - (b[i] < b[j])
            s, n_a, n_b = s + da * db, n_a + (da != 0), n_b + (db != 0)
    return s / math.sqrt(n_a * n_b) if n_a and n_b else math.nan


def real_timers(proto: LatencyProtocol, *, whole_rounds: int = 20) -> tuple[TimeParts, TimeWhole]:
    """``time_parts`` and ``time_whole`` on this process's CPU or GPU under ``proto``: parts in
    groups of 16 timed side by side (a short protocol: 3 rounds), whole candidates in groups of 8
    with ``whole_rounds`` rounds (the held-out check's measured latency)."""
    part_proto = dataclasses.replace(
        proto, warmup_iters=5, warmup_s=0.02, warmup_max_s=0.5, rounds=3, max_rounds=3,
        min_round_s=0.01,
    )  # fmt: skip
    whole_proto = dataclasses.replace(proto, rounds=whole_rounds, max_rounds=whole_rounds)

    def time_parts(parts: Sequence[Part]) -> list[float]:
        out: list[float] = []
        for i in range(0, len(parts), 16):
            out += _time_part_group(parts[i : i + 16], part_proto)
        return out

    def time_whole(candidates: Sequence[Candidate]) -> list[float]:
        out: list[float] = []
        for i in range(0, len(candidates), 8):
            chunk = candidates[i : i + 8]
            models = {str(j): _deploy(c) for j, c in enumerate(chunk)}
            res = measure_latencies(models, whole_proto)
            out += [res[str(j)]["latency_ms_p50"] for j in range(len(chunk))]
        return out

    return time_parts, time_whole


def _time_part_group(parts: Sequence[Part], proto: LatencyProtocol) -> list[float]:
    from nas.measure.latency import _interval, _round_medians, pinned_threads

    timers = {str(i): _part_timer(p, proto) for i, p in enumerate(parts)}
    with pinned_threads(proto.threads), torch.inference_mode():
        rounds, _ = time_rounds(timers, proto)
    return [_interval(_round_medians(rounds[str(i)]))[1] for i in range(len(parts))]


def _part_timer(part: Part, proto: LatencyProtocol):
    device = torch.device(proto.device)
    module = part.module.to(device)
    args = []
    for spec in part.args:
        if spec[0] == "t":
            t = torch.randn(spec[1], device=device)
            args.append(t.to(memory_format=torch.channels_last) if spec[2] else t)
        else:
            args.append(spec[1])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed() -> float:
        t0 = time.perf_counter()
        module(*args)
        sync()
        return (time.perf_counter() - t0) * 1e3

    return timed
