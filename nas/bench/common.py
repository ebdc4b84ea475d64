"""Shared by the benchmarks: side-by-side (interleaved) timing, paired ratios, targets, pinned
threads and the seed candidates."""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from nas.measure.latency_fit import kendall_tau  # noqa: F401 - re-exported

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "spaces" / "seeds.yaml"
CPU_THREADS = 1


def target(label: str, value, text: str, met: bool | None) -> dict:
    return {"label": label, "value": value, "text": text, "met": met}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(fns: dict, *, rounds: int, device="cpu", warmup_iters=10, warmup_s=1.0) -> dict:
    """Seconds of one call of each function, ``rounds`` times, the order reversed every round,
    after a warm-up of at least ``warmup_iters`` calls and ``warmup_s`` seconds each."""
    for fn in fns.values():
        start, n = time.perf_counter(), 0
        while n < warmup_iters or time.perf_counter() - start < warmup_s:
            fn()
            n += 1
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        for name in list(fns)[:: 1 if r % 2 == 0 else -1]:
            sync(device)
            t0 = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def paired_ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median of the paired per-round ratios a/b (robust to drifts of the machine)."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def threads(device: str):
    from nas.measure import pinned_threads

    return pinned_threads(CPU_THREADS if device == "cpu" else torch.get_num_threads())


def seed_candidates(n: int, seed: int = 0) -> list:
    import numpy as np

    from nas.space import load_space

    samples, _ = load_space(SEEDS).sample_distinct(n, np.random.default_rng(seed))
    return [s.candidate for s in samples]


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine, so that folding them is visible in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                for t, lo, hi in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 2.0)):
                    t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    return model
