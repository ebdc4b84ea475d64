"""``nas bench kernels``: large depthwise kernels, NCHW against channels_last."""

from __future__ import annotations

import torch
from torch import nn

from nas.bench.common import interleaved, median_ms, paired_ratio, target, threads


def bench_kernels(*, quick: bool, device: str = "cpu") -> dict:
    cuda = device.startswith("cuda")
    ks = (3, 7, 13, 31) if quick else (3, 5, 7, 9, 13, 17, 21, 27, 31)
    if cuda:
        shapes = [(64, 384, r, r) for r in (16, 32, 64)]
        backends = ["eager", "channels_last", "compile", "bf16", "bf16_channels_last"]
    else:
        shapes = [(1, 64, 16, 16)] if quick else [(1, 128, 32, 32)]
        backends = ["eager", "channels_last"] + ([] if quick else ["compile"])
    notes = [] if cuda or not quick else ["compile skipped in quick mode on CPU (~26 s cold)"]

    def make(backend: str, k: int, c: int) -> nn.Module:
        torch.manual_seed(0)
        m = nn.Sequential(*(nn.Conv2d(c, c, k, padding=k // 2, groups=c) for _ in range(24)))
        m = m.to(device, torch.bfloat16 if backend.startswith("bf16") else torch.float32)
        if backend.endswith("channels_last"):
            m = m.to(memory_format=torch.channels_last)
        return torch.compile(m) if backend == "compile" else m

    figures, targets = {}, []
    for shape in shapes:
        fns = {}
        for b in backends:
            fmt = torch.channels_last if b.endswith("channels_last") else torch.contiguous_format
            dt = torch.bfloat16 if b.startswith("bf16") else torch.float32
            x = torch.randn(shape, device=device, dtype=dt).to(memory_format=fmt)
            models = {k: make(b, k, shape[1]) for k in ks}
            fns |= {f"{b}/k{k}": (lambda m=m, x=x: m(x)) for k, m in models.items()}
        with torch.inference_mode(), threads(device):
            times = interleaved(fns, rounds=5, device=device, warmup_iters=3, warmup_s=0.2)
        key = "x".join(map(str, shape))
        for b in backends:
            row = {f"k{k}/k3": paired_ratio(times, f"{b}/k{k}", f"{b}/k3") for k in ks[1:]}
            figures[f"{key}/{b}"] = row | {
                f"k{k}ms": median_ms(times[f"{b}/k{k}"]) for k in (3, 31)
            }
        if cuda and shape[-1] != 32:
            continue
        for b in backends:
            r = figures[f"{key}/{b}"]["k31/k3"]
            text = "<= 6x at R=32 on GPU" + ("" if cuda else f"; n/a on CPU ({key})")
            targets.append(target(f"{b}.k31/k3", r, text, (r <= 6) if cuda else None))
        if cuda:
            best = min(figures[f"{key}/{b}"]["k31/k3"] for b in backends)
            targets.append(target("best.k31/k3", best, "<= 6x at R=32, best backend", best <= 6))
    return {"figures": figures, "targets": targets, "notes": notes}
