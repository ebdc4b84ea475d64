"""``nas bench grn``: GRN block throughput against the plain ConvNeXt block."""

from __future__ import annotations

import statistics

import torch

from nas.bench.common import interleaved, paired_ratio, target, threads


def bench_grn(*, quick: bool, device: str = "cpu") -> dict:
    from nas.models.blocks import ConvNeXtBlock

    dim, res, batch = (64, 32, 8) if quick else (96, 56, 16)
    x = torch.randn(batch, dim, res, res, device=device)
    fns, modes = {}, ["eager"] + ([] if quick else ["compile"])
    for mode in modes:
        for grn in (True, False):
            torch.manual_seed(0)
            m = ConvNeXtBlock(dim, mlp_ratio=4.0, grn=grn).to(device).train()
            m = torch.compile(m) if mode == "compile" else m

            def step(m=m) -> None:
                m.zero_grad(set_to_none=True)
                m(x).square().mean().backward()

            fns[f"{mode}/{'grn' if grn else 'plain'}"] = step
    with threads(device):
        times = interleaved(fns, rounds=40, device=device, warmup_iters=3, warmup_s=0.5)
    figures: dict = {"shape": [batch, dim, res, res], "hidden": 4 * dim}
    targets = []
    for mode in modes:
        ratio = paired_ratio(times, f"{mode}/plain", f"{mode}/grn")  # throughput GRN / no GRN
        per_s = {f"{k}_img_per_s": batch / statistics.median(times[f"{mode}/{k}"]) for k in ("grn", "plain")}  # fmt: skip
        figures[mode] = per_s | {"throughput_ratio": ratio}
        met = ratio >= 0.9 if mode == "eager" else None
        targets.append(target(f"{mode}.grn/plain", ratio, "throughput >= 0.9 (eager)", met))
    notes = ["compiled variant skipped in quick mode"] if quick else []
    return {"figures": figures, "targets": targets, "notes": notes}
