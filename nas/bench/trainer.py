"""Overhead of the trainer's step against a minimal hand-written PyTorch loop.

Both loops train copies of the same model (same weights) on the same batch tensors, interleaved
step by step in one process (trainer, baseline, baseline, trainer, ...) so that machine noise hits
both alike. Each step is timed alone (synchronised on CUDA); a repeat's throughput is batch / the
median step time of its ``steps`` steps; the figures are medians over ``repeats``, the ratio the
median of the repeats' paired ratios.

The trainer side is ``nas.train.make_step``, the exact step ``train()`` runs (schedule, label
smoothing, gradient clipping, no-decay groups, autocast / channels-last on CUDA); the baseline is
plain AdamW + cross-entropy under the same precision and memory format. Augmentation and batching
are part of neither step (the same pre-made batch is reused).
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nas.bench.common import ROOT, target, threads
from nas.models.build import build_model
from nas.space.candidate import Candidate, load_candidate
from nas.train.trainer import TrainConfig, make_optimizer, make_step, use_amp, use_channels_last

__all__ = ["DEFAULT_PRESET", "bench_trainer"]

DEFAULT_PRESET = ROOT / "spaces" / "presets" / "convnextv2_atto.yaml"


def bench_trainer(
    *,
    candidate: Candidate | None = None,
    batch_size: int = 128,
    steps: int = 30,
    warmup: int = 5,
    image_size: int = 32,
    device: str = "cpu",
    repeats: int = 3,
    threads: int | None = None,
) -> dict:
    """Images/s of the trainer's step and of a minimal loop; ``ratio`` = trainer / baseline.

    ``threads`` pins torch's intra-op threads for the measurement (restored afterwards); on a
    shared CPU one thread is far less sensitive to other processes than a spinning team.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _bench(candidate, batch_size, steps, warmup, image_size, device, repeats)
    finally:
        torch.set_num_threads(previous)


def _bench(candidate, batch_size, steps, warmup, image_size, device, repeats) -> dict:
    if candidate is None:
        candidate = load_candidate(DEFAULT_PRESET)
        candidate = dataclasses.replace(candidate, num_classes=10, image_size=image_size)
    cfg = TrainConfig(device=device)
    dev = torch.device(device)
    torch.manual_seed(0)
    trainer_model = build_model(candidate).to(dev)
    baseline_model = copy.deepcopy(trainer_model)
    channels_last = use_channels_last(cfg, dev)
    if channels_last:
        for m in (trainer_model, baseline_model):
            m.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, candidate.in_chans, image_size, image_size, generator=g).to(dev)
    y = torch.randint(0, candidate.num_classes, (batch_size,), generator=g).to(dev)

    total = warmup + repeats * steps
    opt = make_optimizer(trainer_model, cfg)
    trainer_step = make_step(trainer_model, opt, cfg, total_steps=total, warmup_steps=warmup)
    baseline_step = _baseline_step(baseline_model, cfg.lr, amp=use_amp(cfg, dev), dev=dev)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    steps_fns = {"trainer": trainer_step, "baseline": lambda a, b, i: baseline_step(a, b)}
    runs = _interleave(steps_fns, x, y, steps=steps, warmup=warmup, repeats=repeats, dev=dev)
    trainer, baseline = (statistics.median(runs[k]) for k in ("trainer", "baseline"))
    ratios = [a / b for a, b in zip(runs["trainer"], runs["baseline"])]
    return {
        "trainer_images_per_s": trainer,
        "baseline_images_per_s": baseline,
        "ratio": statistics.median(ratios),  # of the paired repeats: robust to machine noise
        "trainer_runs": runs["trainer"],
        "baseline_runs": runs["baseline"],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "amp_bf16": use_amp(cfg, dev),
        "channels_last": channels_last,
        "batch": batch_size,
        "steps": steps,
        "warmup": warmup,
        "repeats": repeats,
        "image_size": image_size,
        "candidate_id": candidate.id,
    }


def _interleave(
    fns: dict[str, Callable], x, y, *, steps: int, warmup: int, repeats: int, dev: torch.device
) -> dict[str, list[float]]:
    """Images/s per repeat and side: batch / median step time, steps alternating AB BA AB ..."""
    counters = dict.fromkeys(fns, 0)

    def timed(name: str) -> float:
        _sync(dev)
        t0 = time.perf_counter()
        fns[name](x, y, counters[name])
        _sync(dev)
        counters[name] += 1
        return time.perf_counter() - t0

    for _ in range(warmup):
        for name in fns:
            timed(name)
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        step_s: dict[str, list[float]] = {name: [] for name in fns}
        for i in range(steps):  # machine noise hits both sides alike
            for name in list(fns)[:: 1 if i % 2 == 0 else -1]:
                step_s[name].append(timed(name))
        for name, ts in step_s.items():
            runs[name].append(len(x) / statistics.median(ts))
    return runs


def _baseline_step(
    model: torch.nn.Module, lr: float, *, amp: bool, dev: torch.device
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loop anyone would write: AdamW on all parameters, CE, backward, step."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, fused=True if dev.type == "cuda" else None)
    model.train()

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench(*, quick: bool, device: str = "cpu") -> dict:
    """``nas bench trainer``: the figures, and the >= 0.95 throughput target."""
    kwargs = dict(steps=5, warmup=2, repeats=5) if quick else dict(steps=30, repeats=5)
    with threads(device):
        res = bench_trainer(**kwargs, device=device)
    ratio = res["ratio"]
    targets = [target("ratio", ratio, "trainer/baseline throughput >= 0.95", ratio >= 0.95)]
    return {"figures": res, "targets": targets, "notes": []}
