"""Cost of a candidate: parameters, MACs, latency and training memory, in training and deploy form.

* MACs are fvcore's count (one multiply-add = one "flop"), with a handle for
  ``scaled_dot_product_attention`` that fvcore skips (MACs = b*h*n_q*n_k*(d + d_v)). What stays
  uncounted is listed in ``uncounted_ops`` (softmax, GELU, elementwise ops, GRN's norm, ...).
* ``fast_cost`` gives parameters and MACs without real weights: the model is built on the ``meta``
  device and counted with ``torch.utils.flop_counter.FlopCounterMode``, with formulas that mirror
  fvcore's for the ops FlopCounterMode does not count (norms, pooling, upsampling, CPU SDPA).
* Latency follows the benchmark protocol: deploy form, ``eval()`` + ``inference_mode``, warm-up of
  at least 10 iterations and 1 s, 30 timed runs (median, p90, coefficient of variation), threads
  pinned on CPU, ``torch.cuda.synchronize()`` around each timed run on GPU.
* Training memory: bytes saved for backward on any device (``nas.memory.saved_bytes``); CUDA
  ``max_memory_allocated`` of one training step on GPU (null on CPU).
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.candidate import Candidate
from nas.errors import UserError, is_oom

__all__ = [
    "ROW_KEYS",
    "LatencyProtocol",
    "count_macs",
    "count_params",
    "fast_cost",
    "flop_counter_macs",
    "flop_counter_mapping",
    "measure_candidate",
    "measure_latency",
    "check_constraints",
    "cost_columns",
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
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------- MACs (fvcore)
def _sdpa_jit_handle(inputs, outputs) -> int:
    """fvcore handle for aten::scaled_dot_product_attention: QK^T and AV multiply-adds."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = math.prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def count_macs(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int]]:
    """fvcore MACs of one eval forward on ``x``, and the ops fvcore left uncounted."""
    from fvcore.nn import FlopCountAnalysis

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(model, (x,))
            analysis.set_op_handle("aten::scaled_dot_product_attention", _sdpa_jit_handle)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(
                False
            ).tracer_warnings("none")
            total = int(analysis.total())
            uncounted = dict(sorted(analysis.unsupported_ops().items()))
    finally:
        model.train(was_training)
    return total, {k.removeprefix("aten::"): int(v) for k, v in uncounted.items()}


# ---------------------------------------------------------------------- cross-check counter
def flop_counter_mapping() -> dict:
    """``torch.utils.flop_counter.FlopCounterMode`` formulas (2 flops per MAC) for the ops fvcore
    counts and FlopCounterMode does not (norms, pooling, upsampling, SDPA's CPU kernel), so that
    FlopCounterMode / 2 reproduces fvcore: an independent check of ``count_macs``."""
    aten = torch.ops.aten

    def layer_norm(x, normalized_shape, weight=None, *args, out_shape=None, **kw) -> int:
        return 2 * math.prod(x) * (5 if weight is not None else 4)

    def batch_norm_eval(x, weight=None, *args, out_shape=None, **kw) -> int:
        return 2 * math.prod(x) * (2 if weight is not None else 1)

    def nearest(x, *args, out_shape=None, **kw) -> int:
        return 2 * math.prod(out_shape)

    def bilinear(x, *args, out_shape=None, **kw) -> int:
        return 2 * 4 * math.prod(out_shape)

    def sdpa(q, k, v, *args, out_shape=None, **kw) -> int:
        return 2 * math.prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])

    return {
        aten.native_layer_norm: layer_norm,
        aten._native_batch_norm_legit_no_training: batch_norm_eval,
        aten.upsample_nearest2d: nearest,
        aten.upsample_bilinear2d: bilinear,
        aten._scaled_dot_product_flash_attention_for_cpu: sdpa,
    }


def flop_counter_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs by FlopCounterMode (flops / 2) with ``flop_counter_mapping``; eval forward."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with (
            torch.no_grad(),
            FlopCounterMode(display=False, custom_mapping=flop_counter_mapping()) as counter,
        ):
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def fast_cost(candidate: Candidate, *, image_size: int | None = None) -> dict[str, int]:
    """params, params_deploy, macs, macs_deploy without building a model (``nas.cost``)."""
    from nas.cost import analytic_cost

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


# ---------------------------------------------------------------------- latency
@dataclass(frozen=True)
class LatencyProtocol:
    device: str = "cpu"
    batch: int = 1
    image_size: int = 32
    threads: int = 1
    dtype: str = "float32"  # bfloat16/float16: autocast on CUDA
    # channels_last by default: PyTorch's CPU depthwise convs with large kernels are up to ~15x
    # faster in NHWC than in NCHW (nas bench kernels), so NCHW would bias latency against them.
    channels_last: bool = True
    warmup_iters: int = 10
    warmup_s: float = 1.0
    timed_iters: int = 30


_LATENCY_CACHE: dict[tuple, dict[str, float]] = {}


@contextlib.contextmanager
def pinned_threads(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_latency(
    model: nn.Module, proto: LatencyProtocol, *, key: str | None = None
) -> dict[str, float]:
    """Time ``model`` (already in deploy form) under ``proto``; cached per (key, protocol)."""
    cache_key = (key, proto) if key is not None else None
    if cache_key is not None and cache_key in _LATENCY_CACHE:
        return dict(_LATENCY_CACHE[cache_key])
    device = torch.device(proto.device)
    cuda = device.type == "cuda"
    model = model.to(device).eval()
    memory_format = torch.channels_last if proto.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    x = torch.randn(proto.batch, 3, proto.image_size, proto.image_size, device=device).to(
        memory_format=memory_format
    )
    autocast = torch.autocast(
        device.type, dtype=_DTYPES[proto.dtype], enabled=proto.dtype != "float32"
    )
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    with pinned_threads(proto.threads), torch.inference_mode(), autocast:
        start, n = time.perf_counter(), 0
        while n < proto.warmup_iters or time.perf_counter() - start < proto.warmup_s:
            model(x)
            n += 1
        sync()
        times = []
        for _ in range(proto.timed_iters):
            t0 = time.perf_counter()
            model(x)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    mean = statistics.fmean(times)
    result = {
        "latency_ms_p50": statistics.median(times),
        "latency_ms_p90": times[min(len(times) - 1, math.ceil(0.9 * len(times)) - 1)],
        "latency_cv": statistics.pstdev(times) / mean if mean > 0 else 0.0,
        "warmup_iters": n,
    }
    if cache_key is not None:
        _LATENCY_CACHE[cache_key] = dict(result)
    return result


# ---------------------------------------------------------------------- one row
def resolve_device(device: str) -> str:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"--device: expected cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            f"--device {device}: no CUDA device is available here (torch.cuda.is_available() is False)"
        )
    return device


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


def measure_candidate(
    candidate: Candidate,
    *,
    proto: LatencyProtocol | None = None,
    latency: bool = True,
    memory: bool = True,
    throughput_batch: int | None = None,
) -> dict[str, Any]:
    """One measurement row (``ROW_KEYS`` and a few extras). Failures end up in the row
    (``status`` = ``oom`` or ``error`` with ``error``), never as an exception."""
    from nas.memory import saved_bytes
    from nas.model import build_model, reparameterize

    proto = proto or LatencyProtocol(image_size=candidate.image_size)
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
            xt = torch.randn(
                max(2, proto.batch), candidate.in_chans, proto.image_size, proto.image_size
            )
            row["train_saved_bytes"] = saved_bytes(model, xt)
            row["train_batch"] = xt.shape[0]
            row["train_peak_bytes"] = _train_peak_bytes(model.to(proto.device), xt.to(proto.device))
        if latency:
            row.update(measure_latency(deploy, proto, key=candidate.id))
            if throughput_batch:
                tp = LatencyProtocol(**{**proto.__dict__, "batch": throughput_batch})
                res = measure_latency(deploy, tp, key=candidate.id)
                row["throughput_batch"] = throughput_batch
                row["throughput_images_per_s"] = throughput_batch / res["latency_ms_p50"] * 1e3
    except torch.OutOfMemoryError as e:
        row.update(status="oom", error=f"out of memory: {str(e).splitlines()[0]}")
    except Exception as e:  # noqa: BLE001 - a multi-candidate run records it and goes on
        log.warning("measuring %s failed: %s", candidate.id, e)
        status = "oom" if isinstance(e, MemoryError) or is_oom(str(e)) else "error"
        row.update(status=status, error=f"{type(e).__name__}: {e}")
    row["warmup_iters"] = row.get("warmup_iters")
    row["measure_s"] = time.perf_counter() - t0
    return row
