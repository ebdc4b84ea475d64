"""Latency by the benchmark protocol: deploy form, ``eval()`` + ``inference_mode``, warm-up of at
least 10 iterations and 1 s, 30 timed runs (median, p90, coefficient of variation), threads pinned
on CPU, ``torch.cuda.synchronize()`` around each timed run on GPU."""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["LatencyProtocol", "measure_latency", "pinned_threads"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
