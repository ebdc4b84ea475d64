"""``nas bench fcmae``: an FCMAE pre-training step against the supervised step of the same
candidate (informative: the dense emulation computes every position, masked or not, so the
encoder costs what the supervised forward costs; the decoder and the masking add to it)."""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from nas.bench.common import interleaved, paired_ratio, target, threads


def bench_fcmae(*, quick: bool, device: str = "cpu") -> dict:
    from nas.models.build import build_model
    from nas.pretrain import FCMAE
    from nas.space.candidate import Candidate

    widths, size, batch = ((24, 48, 96, 192), 32, 32) if quick else ((40, 80, 160, 320), 64, 64)
    c = Candidate(
        widths=widths, depths=(1, 1, 2, 1), grn=True, num_classes=10, image_size=size, in_chans=3
    )
    torch.manual_seed(0)
    fcmae = FCMAE(c, patch=size // 4, decoder_dim=128).to(device).train()
    plain = build_model(c).to(device).train()
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    mask = fcmae.random_mask(batch, gen)

    def pretrain_step() -> None:
        fcmae.zero_grad(set_to_none=True)
        fcmae(x, mask)[0].backward()

    def supervised_step() -> None:
        plain.zero_grad(set_to_none=True)
        F.cross_entropy(plain(x), y).backward()

    fns = {"pretrain": pretrain_step, "supervised": supervised_step}
    with threads(device):
        times = interleaved(fns, rounds=15, device=device, warmup_iters=3, warmup_s=0.5)
    ratio = paired_ratio(times, "pretrain", "supervised")  # time per step: > 1 is slower
    decoder = sum(p.numel() for n, p in fcmae.named_parameters() if not n.startswith("encoder."))
    figures = {
        "shape": [batch, 3, size, size],
        "mask": f"{fcmae.side}x{fcmae.side} patches of {fcmae.patch} px, ratio {fcmae.mask_ratio}",
        "pretrain_img_per_s": batch / statistics.median(times["pretrain"]),
        "supervised_img_per_s": batch / statistics.median(times["supervised"]),
        "step_time_ratio": ratio,
        "decoder_params": decoder,
        "encoder_macs_skipped": 0.0,
    }
    notes = [
        "dense emulation: masked positions are computed and zeroed, no encoder MACs are skipped"
    ]
    return {
        "figures": figures,
        "targets": [target("pretrain/supervised step time", ratio, "informative", None)],
        "notes": notes,
    }
