"""One measurement row of a candidate: parameters and MACs (``nas.measure.counts``), latency
(``nas.measure.latency``) and training memory, in training and deploy form.

* ``fast_cost`` gives parameters and MACs without building a model: the analytic tally of
  ``nas.measure.cost``, which matches fvcore exactly.
* Training memory: bytes saved for backward on any device (``nas.measure.memory.saved_bytes``);
  CUDA ``max_memory_allocated`` of one training step on GPU (null on CPU).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from nas.errors import is_oom
from nas.measure.counts import count_macs, count_params
from nas.measure.latency import LatencyProtocol, measure_latency
from nas.space.candidate import Candidate

__all__ = [
    "ROW_KEYS",
    "check_constraints",
    "cost_columns",
    "fast_cost",
    "measure_candidate",
    "reference_model",
]

log = logging.getLogger(__name__)

ROW_KEYS = (
    "candidate_id",
    "params",
    "params_deploy",
    "macs",
    "macs_deploy",
    "uncounted_ops",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_cv",
    "latency_ci_low_ms",
    "latency_ci_high_ms",
    "latency_rounds",
    "latency_rel",
    "latency_rel_ci_low",
    "latency_rel_ci_high",
    "latency_ref_ms_p50",
    "latency_ref_id",
    "latency_batch",
    "train_saved_bytes",
    "train_peak_bytes",
    "device",
    "torch_version",
    "threads",
    "dtype",
    "warmup_iters",
    "timed_iters",
    "measure_s",
)


def fast_cost(candidate: Candidate, *, image_size: int | None = None) -> dict[str, int]:
    """params, params_deploy, macs, macs_deploy without building a model (``nas.measure.cost``)."""
    from nas.measure.cost import analytic_cost

    return analytic_cost(candidate, image_size=image_size)


def cost_columns(row: Mapping[str, Any]) -> dict[str, float]:
    """Unit-named cost columns (``params_m``, ``macs_m``, ...) from a measurement row."""
    out = {}
    for key, col, scale in (
        ("params", "params_m", 1e6),
        ("params_deploy", "params_m_deploy", 1e6),
        ("macs", "macs_m", 1e6),
        ("macs_deploy", "macs_m_deploy", 1e6),
        ("train_saved_bytes", "train_saved_mb", 2**20),
        ("train_peak_bytes", "train_peak_mb", 2**20),
        ("latency_ms_p50", "latency_ms_p50", 1),
        ("latency_ms_p90", "latency_ms_p90", 1),
        ("latency_rel", "latency_rel", 1),
        ("latency_pred_ms", "latency_pred_ms", 1),
    ):
        if row.get(key) is not None:
            out[col] = row[key] / scale
    return out


def check_constraints(costs: Mapping[str, float], constraints: Mapping[str, tuple]) -> list[str]:
    """Violations (empty when feasible) of ``{column: (lo, hi)}`` windows; unknown costs skip."""
    out = []
    for col, (lo, hi) in constraints.items():
        value = costs.get(col)
        if value is None:
            continue
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            out.append(f"{col}={value:.4g} outside [{lo}, {hi}]")
    return out


# ---------------------------------------------------------------------- one row
def _train_peak_bytes(model: nn.Module, x: torch.Tensor) -> int | None:
    if x.device.type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(x.device)
    model.train()
    model(x).float().square().mean().backward()
    torch.cuda.synchronize()
    model.zero_grad(set_to_none=True)
    return int(torch.cuda.max_memory_allocated(x.device))


def _memory(
    model: nn.Module, candidate: Candidate, proto: LatencyProtocol, batch: int | None
) -> dict[str, Any]:
    """Training memory of one step at ``batch`` (default: the latency batch, at least 2):
    bytes saved for backward, and the CUDA peak on GPU."""
    from nas.measure.memory import saved_bytes

    batch = batch or max(2, proto.batch)
    xt = torch.randn(batch, candidate.in_chans, proto.image_size, proto.image_size)
    return {
        "train_saved_bytes": saved_bytes(model, xt),
        "train_batch": xt.shape[0],
        "train_peak_bytes": _train_peak_bytes(model.to(proto.device), xt.to(proto.device)),
    }


def reference_model(reference: Candidate, proto: LatencyProtocol) -> tuple[str, nn.Module]:
    """The reference's id and deploy form, taking the same input as the candidate timed with it
    (``proto``'s image size and channels; its own architecture otherwise)."""
    from nas.models.build import build_model, reparameterize

    ref = Candidate.from_params(
        {"image_size": proto.image_size, "in_chans": proto.in_chans}, base=reference
    )
    torch.manual_seed(0)
    return ref.id, reparameterize(build_model(ref))


def _latency(deploy, candidate, proto, reference, throughput_batch) -> dict[str, Any]:
    """Latency columns (relative to ``reference`` when given; throughput at a second batch)."""
    ref_id, ref = reference_model(reference, proto) if reference else (None, None)
    out = measure_latency(deploy, proto, key=candidate.id, reference=ref, reference_key=ref_id)
    out["latency_ref_id"] = ref_id
    if throughput_batch:
        tp = LatencyProtocol(**{**proto.__dict__, "batch": throughput_batch})
        res = measure_latency(deploy, tp, key=candidate.id)
        out["throughput_batch"] = throughput_batch
        out["throughput_images_per_s"] = throughput_batch / res["latency_ms_p50"] * 1e3
    return out


def measure_candidate(
    candidate: Candidate,
    *,
    proto: LatencyProtocol | None = None,
    latency: bool = True,
    memory: bool = True,
    throughput_batch: int | None = None,
    memory_batch: int | None = None,
    reference: Candidate | None = None,
) -> dict[str, Any]:
    """One measurement row (``ROW_KEYS`` and a few extras). Failures end up in the row
    (``status`` = ``oom`` or ``error`` with ``error``), never as an exception. ``reference``: a
    candidate timed in the same rounds (``latency_rel``, ``reference_model``)."""
    from nas.models.build import build_model, reparameterize

    proto = dataclasses.replace(
        proto or LatencyProtocol(image_size=candidate.image_size), in_chans=candidate.in_chans
    )
    t0 = time.perf_counter()
    row: dict[str, Any] = dict.fromkeys(ROW_KEYS)
    row.update(
        candidate_id=candidate.id,
        device=proto.device,
        torch_version=torch.__version__,
        threads=proto.threads,
        dtype=proto.dtype,
        latency_batch=proto.batch,
        memory_format="channels_last" if proto.channels_last else "contiguous",
        image_size=proto.image_size,
        timed_iters=proto.timed_iters,
        status="ok",
        error=None,
    )
    try:
        torch.manual_seed(0)
        model = build_model(candidate)
        deploy = reparameterize(model)
        x = torch.randn(proto.batch, candidate.in_chans, proto.image_size, proto.image_size)
        row["params"], row["params_deploy"] = count_params(model), count_params(deploy)
        row["macs"], uncounted = count_macs(model, x)
        row["macs_deploy"], uncounted_deploy = count_macs(deploy, x)
        row["uncounted_ops"] = sorted(set(uncounted) | set(uncounted_deploy))
        if memory:
            row.update(_memory(model, candidate, proto, memory_batch))
        if latency:
            row.update(_latency(deploy, candidate, proto, reference, throughput_batch))
    except torch.OutOfMemoryError as e:
        row.update(status="oom", error=f"out of memory: {str(e).splitlines()[0]}")
    except Exception as e:  # noqa: BLE001 - a multi-candidate run records it and goes on
        log.warning("measuring %s failed: %s", candidate.id, e)
        status = "oom" if isinstance(e, MemoryError) or is_oom(str(e)) else "error"
        row.update(status=status, error=f"{type(e).__name__}: {e}")
    row["warmup_iters"] = row.get("warmup_iters")
    row["measure_s"] = time.perf_counter() - t0
    return row
