"""``nas bench reparam``: deploy (re-parameterized) against training-form speed, and output equality."""

from __future__ import annotations

import copy

import torch
from torch import nn

from nas.bench.common import (
    ROOT,
    interleaved,
    median_ms,
    paired_ratio,
    randomize_bn,
    target,
    threads,
)


def bench_reparam(*, quick: bool, device: str = "cpu") -> dict:
    from nas.measure import count_macs
    from nas.models.blocks import RepLKBlock
    from nas.models.build import build_model, reparameterize
    from nas.space.candidate import Candidate, load_candidate

    dim, res, size = (64, 16, 64) if quick else (128, 32, 128)
    rep31b = load_candidate(ROOT / "spaces" / "presets" / "replknet_31b.yaml")
    style = Candidate(
        block="replk", depths=(1, 1, 2, 1), widths=(32, 64, 128, 256), kernels=(31, 29, 27, 13),
        small_kernels=(5, 5, 5, 5), grn=False, num_classes=10, image_size=32,
    )  # fmt: skip

    def stack() -> nn.Module:
        return nn.Sequential(*(RepLKBlock(dim, kernel_size=31, small_kernel=5) for _ in range(4)))

    cases = {  # name: (factory, input shape, timed rounds)
        f"replk_stack_d{dim}_r{res}": (stack, (1, dim, res, res), 30),
        f"replknet_31b_{size}": (lambda: build_model(rep31b), (1, 3, size, size), 10 if quick else 30),
        "replk_candidate_32": (lambda: build_model(style), (1, 3, 32, 32), 30),
    }  # fmt: skip
    figures, targets = {}, []
    for name, (make, shape, rounds) in cases.items():
        torch.manual_seed(0)
        train = randomize_bn(make()).eval()
        deploy = reparameterize(train)
        x = torch.randn(shape)
        macs_ratio = count_macs(deploy, x)[0] / count_macs(train, x)[0]
        fns, cl = {}, torch.channels_last
        for fmt, suffix in ((torch.contiguous_format, ""), (cl, "_cl")):  # NCHW and channels-last
            xf = x.to(device, memory_format=fmt)
            for form, m in (("train", train), ("deploy", deploy)):
                m = copy.deepcopy(m).to(device, memory_format=fmt)
                fns[form + suffix] = lambda m=m, xf=xf: m(xf)
        with torch.inference_mode(), threads(device):
            out_t, out_d = fns["train"](), fns["deploy"]()
            times = interleaved(fns, rounds=rounds, device=device)
        diff = (out_t - out_d).abs().max().item()
        rel = diff / max(out_t.abs().max().item(), 1e-30)
        row = figures[name] = {f"{k}ms": median_ms(v) for k, v in times.items()}
        for suffix, layout in (("", "NCHW"), ("_cl", "channels_last")):
            ratio = row["ratio" + suffix] = paired_ratio(times, "deploy" + suffix, "train" + suffix)
            text = f"deploy/train <= 0.85 ({layout})"
            targets.append(target(f"{name}.ratio{suffix}", ratio, text, ratio <= 0.85))
        row |= dict(macs_ratio=macs_ratio, rounds=rounds, max_abs_diff=diff, rel_diff=rel)
        ok = diff <= 1e-5 or rel <= 1e-5
        targets.append(target(f"{name}.diff", diff, f"<= 1e-5 abs or rel (rel {rel:.2g})", ok))
    notes = ["replknet_31b timed over 10 interleaved rounds in quick mode"] if quick else []
    return {"figures": figures, "targets": targets, "notes": notes}
