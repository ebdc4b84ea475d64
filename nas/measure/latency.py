"""Latency by the benchmark protocol: deploy form, ``eval()`` + ``inference_mode``, threads pinned
on CPU, ``torch.cuda.synchronize()`` around each timed run on GPU.

* Warm-up: at least ``warmup_iters`` runs and ``warmup_s`` seconds, then until it has converged
  (the median of the last 10 runs within 5% of the 10 before; at most ``warmup_max_s``).
* Timing in rounds of ``timed_iters`` runs; the figure is the median of the rounds' medians, with
  a confidence interval from the order statistics of the round medians (about 94% with 5
  rounds). When the interval is wider than ``max_ci`` of the figure, more rounds are timed (up to
  ``max_rounds``): a busy stretch of the machine widens the interval instead of moving the figure.
* The row records the rounds, the interval and the warm-up a reader needs to judge the value.
"""

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
    in_chans: int = 3
    threads: int = 1
    dtype: str = "float32"  # bfloat16/float16: autocast on CUDA
    # channels_last by default: PyTorch's CPU depthwise convs with large kernels are up to ~15x
    # faster in NHWC than in NCHW (nas bench kernels), so NCHW would bias latency against them.
    channels_last: bool = True
    warmup_iters: int = 10
    warmup_s: float = 1.0
    timed_iters: int = 10  # per round
    rounds: int = 5
    max_rounds: int = 15
    max_ci: float = 0.05  # re-measure while the CI half-width exceeds 5% of the median
    warmup_max_s: float = 5.0


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
    x = torch.randn(
        proto.batch, proto.in_chans, proto.image_size, proto.image_size, device=device
    ).to(memory_format=memory_format)
    autocast = torch.autocast(
        device.type, dtype=_DTYPES[proto.dtype], enabled=proto.dtype != "float32"
    )
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def timed() -> float:
        t0 = time.perf_counter()
        model(x)
        sync()
        return (time.perf_counter() - t0) * 1e3

    with pinned_threads(proto.threads), torch.inference_mode(), autocast:
        n = _warm_up(timed, proto)
        rounds: list[list[float]] = []
        while len(rounds) < proto.rounds or (
            len(rounds) < proto.max_rounds and _ci_half(rounds) > proto.max_ci
        ):
            rounds.append([timed() for _ in range(proto.timed_iters)])
    result = _summary(rounds)
    result["warmup_iters"] = n
    if cache_key is not None:
        _LATENCY_CACHE[cache_key] = dict(result)
    return result


def _warm_up(timed, proto: LatencyProtocol) -> int:
    """Warm-up runs until the minimum count and time are reached and the latency has settled."""
    start, times = time.perf_counter(), []
    while True:
        times.append(timed())
        elapsed = time.perf_counter() - start
        if len(times) < proto.warmup_iters or elapsed < proto.warmup_s:
            continue
        if elapsed >= proto.warmup_max_s or len(times) < 20:
            if elapsed >= proto.warmup_max_s:
                return len(times)
            continue
        last, before = statistics.median(times[-10:]), statistics.median(times[-20:-10])
        if abs(last - before) <= 0.05 * before:
            return len(times)


def _round_medians(rounds: list[list[float]]) -> list[float]:
    return sorted(statistics.median(r) for r in rounds)


def _ci_half(rounds: list[list[float]]) -> float:
    """Half-width of the median's interval relative to the median (inf below 3 rounds)."""
    if len(rounds) < 3:
        return math.inf
    lo, mid, hi = _interval(_round_medians(rounds))
    return (hi - lo) / 2 / mid if mid > 0 else 0.0


def _interval(medians: list[float]) -> tuple[float, float, float]:
    """(low, median, high): order statistics bracketing the median with >= ~90% coverage."""
    n = len(medians)
    k = 0
    # the largest k with P(X_(k+1) <= median <= X_(n-k)) >= 0.9 under a binomial(n, 1/2)
    while k + 1 < n / 2 and 1 - 2 * sum(math.comb(n, i) for i in range(k + 2)) / 2**n >= 0.9:
        k += 1
    return medians[k], statistics.median(medians), medians[n - 1 - k]


def _summary(rounds: list[list[float]]) -> dict[str, float]:
    every = sorted(t for r in rounds for t in r)
    lo, mid, hi = _interval(_round_medians(rounds))
    mean = statistics.fmean(every)
    return {
        "latency_ms_p50": mid,
        "latency_ms_p90": every[min(len(every) - 1, math.ceil(0.9 * len(every)) - 1)],
        "latency_cv": statistics.pstdev(every) / mean if mean > 0 else 0.0,
        "latency_ci_low_ms": lo,
        "latency_ci_high_ms": hi,
        "latency_rounds": len(rounds),
        "timed_iters": sum(len(r) for r in rounds),
    }
