"""``nas bench revcol``: reversible against plain RevCol columns, memory saved and step time."""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.bench.common import interleaved, median_ms, paired_ratio, target, threads


def bench_revcol(*, quick: bool, device: str = "cpu", columns=(1, 2, 4, 8)) -> dict:
    from nas.measure.memory import saved_bytes
    from nas.models.build import build_model
    from nas.space.candidate import Candidate

    depths, widths, batch = ((1, 1, 2, 1), (16, 32, 64, 128), 8) if quick else ((2, 2, 4, 2), (32, 64, 128, 256), 16)  # fmt: skip
    # paired rounds: the median of per-round ratios moved by ~0.07 between runs with 7
    size, rounds, cuda = 64, (21 if quick else 11), device.startswith("cuda")
    figures: dict = {"shape": dict(depths=depths, widths=widths, image=size, batch=batch)}
    for n in columns:
        models = {}
        for rev in (True, False):
            c = Candidate(
                macro="revcol", block="convnext", columns=n, reversible=rev, depths=depths,
                widths=widths, kernels=(3,) * 4, grn=False, layer_scale=1e-6, num_classes=10,
                image_size=size,
            )  # fmt: skip
            torch.manual_seed(0)
            models["rev" if rev else "plain"] = build_model(c).to(device).train()
        x = torch.randn(batch, 3, size, size, device=device)
        row = {f"saved_{k}": saved_bytes(m, x) for k, m in models.items()}

        def step(m: nn.Module, x: torch.Tensor = x) -> None:
            m.zero_grad(set_to_none=True)
            m(x).float().square().mean().backward()

        for k, m in models.items() if cuda else ():
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            step(m)
            torch.cuda.synchronize()
            row[f"cuda_peak_{k}"] = torch.cuda.max_memory_allocated() - base
        with threads(device):
            fns = {k: (lambda m=m: step(m)) for k, m in models.items()}
            if n == columns[-1]:  # what any recompute scheme costs: plain step + one forward
                plain = models["plain"]
                fns["floor"] = lambda m=plain, x=x: (step(m), _forward(m, x))
            times = interleaved(fns, rounds=rounds, device=device, warmup_iters=2, warmup_s=0.3)
        row |= dict(step_ms_rev=median_ms(times["rev"]), step_ms_plain=median_ms(times["plain"]))
        row |= dict(saved_ratio=row["saved_rev"] / row["saved_plain"])
        row |= dict(step_ratio=paired_ratio(times, "rev", "plain"))
        if "floor" in times:
            row |= dict(floor_ratio=paired_ratio(times, "floor", "plain"))
        figures[f"columns_{n}"] = row
    last, two = figures[f"columns_{columns[-1]}"], figures.get("columns_2")
    growth = last["saved_rev"] / two["saved_rev"] - 1 if two else math.nan
    figures["rev_saved_growth_2_to_max"] = growth
    sr, st, m = last["saved_ratio"], last["step_ratio"], columns[-1]
    targets = [
        target(f"saved_ratio@{m}", sr, "saved bytes rev/plain <= 0.1", sr <= 0.1),
        target("rev_saved_growth", growth, f"2 -> {m} columns <= 10%", growth <= 0.10),
        target(f"step_ratio@{m}", st, "train step rev/plain <= 1.4", st <= 1.4),
    ]
    notes = [
        f"floor_ratio@{m} {last['floor_ratio']:.3f}: the plain step plus one no-grad forward, "
        "timed in the same rounds (the recompute any reversible scheme pays)"
    ]
    return {"figures": figures, "targets": targets, "notes": notes}


def _forward(model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)
