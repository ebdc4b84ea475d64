"""Latency by the benchmark protocol: deploy form, ``eval()`` + ``inference_mode``, threads pinned
on CPU, ``torch.cuda.synchronize()`` around each timed run on GPU.

* Warm-up: at least ``warmup_iters`` runs and ``warmup_s`` seconds, then until it has converged
  (the median of the last 10 runs within 5% of the 10 before; at most ``warmup_max_s``).
* Timing in rounds of at least ``timed_iters`` runs and ``min_round_s`` seconds; several models
  are timed side by side, one round of each in turn (``measure_latencies``), so that a busy
  stretch of the machine falls on all of them. The figure is the median of the rounds' medians, with
  a confidence interval from the order statistics of the round medians (about 94% with 5
  rounds). When the interval is wider than ``max_ci`` of the figure, more rounds are timed (up to
  ``max_rounds``): a busy stretch of the machine widens the interval instead of moving the figure.
* Relative latency: with a ``reference`` model (by default the space's base candidate) timed in
  the same rounds, each round gives the ratio of the candidate's round median to the reference's;
  ``latency_rel`` is the median of these ratios, with its interval, and ``latency_ref_ms_p50`` the
  reference's own time. A busy stretch of the machine slows both models of a round alike and
  cancels in the ratio (the practice of hardware-aware NAS of ranking against a yardstick).
* The row records the rounds, the interval and the warm-up a reader needs to judge the value.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "LatencyProtocol",
    "measure_latencies",
    "measure_latency",
    "pinned_threads",
    "relative_summary",
    "time_rounds",
]

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
    timed_iters: int = 10  # per round, at least
    min_round_s: float = 0.05  # a round of a fast model runs at least this long
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
    model: nn.Module,
    proto: LatencyProtocol,
    *,
    key: str | None = None,
    reference: nn.Module | None = None,
    reference_key: str | None = None,
) -> dict[str, float]:
    """Time ``model`` (already in deploy form) under ``proto``; cached per (key, protocol). With
    ``reference`` (deploy form too), the two are timed in the same rounds and the result has the
    relative columns (``relative_summary``)."""
    cache_key = (key, proto, reference_key) if key is not None else None
    if reference is not None and reference_key is None:
        cache_key = None  # an unnamed reference: nothing to key the cache by
    if cache_key is not None and cache_key in _LATENCY_CACHE:
        return dict(_LATENCY_CACHE[cache_key])
    models = {"model": model} | ({_REFERENCE: reference} if reference is not None else {})
    result = measure_latencies(
        models, proto, reference=_REFERENCE if reference is not None else None
    )
    result = result["model"]
    if cache_key is not None:
        _LATENCY_CACHE[cache_key] = dict(result)
    return result


_REFERENCE = "reference"


def measure_latencies(
    models: Mapping[str, nn.Module], proto: LatencyProtocol, *, reference: str | None = None
) -> dict[str, dict]:
    """Time several models (deploy form) side by side (``time_rounds``): a busy stretch of the
    machine then falls on every model alike. On the 2-core machine the medians of models timed
    one after the other moved by up to 30% between processes and their ranking swapped; timed in
    rounds side by side, the ranking held (``nas bench latency``).

    ``reference``: the name of one of ``models``; every other model's result then has its
    latency relative to it (``relative_summary``), and rounds go on until those intervals are
    within ``max_ci`` too.
    """
    device = torch.device(proto.device)
    timers = {name: _timer(m, proto, device) for name, m in models.items()}
    autocast = torch.autocast(
        device.type, dtype=_DTYPES[proto.dtype], enabled=proto.dtype != "float32"
    )
    with pinned_threads(proto.threads), torch.inference_mode(), autocast:
        rounds, warmup = time_rounds(timers, proto, reference=reference)
    out = {name: _summary(r) | {"warmup_iters": warmup[name]} for name, r in rounds.items()}
    if reference is not None:
        for name in out:
            if name != reference:
                out[name] |= relative_summary(rounds[name], rounds[reference])
    return out


def time_rounds(
    timers: Mapping[str, Callable[[], float]],
    proto: LatencyProtocol,
    *,
    reference: str | None = None,
) -> tuple[dict[str, list[list[float]]], dict[str, int]]:
    """Warm up each timer (a function running its model once and returning milliseconds), then
    time rounds: each round runs every model ``timed_iters`` times and at least ``min_round_s``
    (the order reversed every other round), until every interval (and with ``reference`` every
    relative interval) is within ``max_ci``, or ``max_rounds``. Returns the times of every round
    of every model and each model's warm-up count."""
    warmup = {name: _warm_up(timed, proto) for name, timed in timers.items()}
    iters = {name: _iters_per_round(timed, proto) for name, timed in timers.items()}
    rounds: dict[str, list[list[float]]] = {name: [] for name in timers}
    order = list(timers)
    while _more_rounds(rounds, proto, reference):
        for name in order[:: 1 if len(rounds[order[0]]) % 2 == 0 else -1]:
            rounds[name].append([timers[name]() for _ in range(iters[name])])
    return rounds, warmup


def relative_summary(rounds: list[list[float]], reference: list[list[float]]) -> dict[str, float]:
    """Latency relative to a reference timed in the same rounds: the median over rounds of the
    ratio of the two round medians, with the interval of ``_interval`` over the ratios, and the
    reference's own median (``latency_ref_ms_p50``, as in ``_summary``)."""
    if len(rounds) != len(reference) or not rounds:
        raise ValueError(f"rounds: {len(rounds)} against the reference's {len(reference)}")
    ratios = _ratios(rounds, reference)
    lo, mid, hi = _interval(ratios)
    return {
        "latency_rel": mid,
        "latency_rel_ci_low": lo,
        "latency_rel_ci_high": hi,
        "latency_ref_ms_p50": _interval(_round_medians(reference))[1],
    }


def _ratios(rounds: list[list[float]], reference: list[list[float]]) -> list[float]:
    return sorted(
        statistics.median(r) / statistics.median(ref) for r, ref in zip(rounds, reference)
    )


def _timer(model: nn.Module, proto: LatencyProtocol, device: torch.device):
    """A function running ``model`` once on a fixed input and returning its milliseconds."""
    memory_format = torch.channels_last if proto.channels_last else torch.contiguous_format
    model = model.to(device).eval().to(memory_format=memory_format)
    x = torch.randn(
        proto.batch, proto.in_chans, proto.image_size, proto.image_size, device=device
    ).to(memory_format=memory_format)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed() -> float:
        t0 = time.perf_counter()
        model(x)
        sync()
        return (time.perf_counter() - t0) * 1e3

    return timed


def _iters_per_round(timed, proto: LatencyProtocol) -> int:
    """``timed_iters``, or more for a fast model, so that a round lasts ``min_round_s``."""
    probe = statistics.median(timed() for _ in range(3)) / 1e3
    return max(proto.timed_iters, math.ceil(proto.min_round_s / max(probe, 1e-9)))


def _more_rounds(
    rounds: Mapping[str, list[list[float]]], proto: LatencyProtocol, reference: str | None
) -> bool:
    done = len(next(iter(rounds.values())))
    if done < proto.rounds:
        return True
    if done >= proto.max_rounds:
        return False
    widths = [_ci_half(r) for r in rounds.values()]
    if reference is not None:
        ref = rounds[reference]
        widths += [_rel_ci_half(r, ref) for name, r in rounds.items() if name != reference]
    return max(widths) > proto.max_ci


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


def _rel_ci_half(rounds: list[list[float]], reference: list[list[float]]) -> float:
    lo, mid, hi = _interval(_ratios(rounds, reference))
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
