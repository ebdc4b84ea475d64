"""RevCol's intermediate supervision (Cai et al., ICLR 2023, sec. 3.3; seeds.md 1.2): which
columns get a head, the paper's loss weights, the reconstruction decoder and the compound loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.models.blocks import ConvNeXtBlock, LayerNorm2d

__all__ = ["Decoder", "aux_columns", "aux_loss_weights", "revcol_loss"]


def aux_columns(columns: int) -> list[int]:
    """0-based columns followed by a classification head: min(4, N) heads evenly spaced, the last
    after the final column (the paper's N//4 interval for N a multiple of 4, generalised)."""
    heads = min(4, columns)
    return sorted({round((k + 1) * columns / heads) - 1 for k in range(heads)})


def aux_loss_weights(
    n_heads: int, *, ce: float = 0.7, recon: float = 3.0
) -> tuple[list[float], list[float]]:
    """(CE weights per head, reconstruction weights per decoder), the paper's defaults
    (CCOE 0.7, FCOE 3.0): head k < n gets ce*k/n, the last head 1.0; decoder k gets
    recon*(1 - (k-1)/(n-1)). For 4 heads: CE 0.175, 0.35, 0.525, 1.0; BCE 3, 2, 1."""
    ce_w = [ce * (k + 1) / n_heads for k in range(n_heads - 1)] + [1.0]
    rec_w = [recon * (1 - k / (n_heads - 1)) for k in range(n_heads - 1)] if n_heads > 1 else []
    return ce_w, rec_w


class Decoder(nn.Module):
    """Reconstruction decoder (num_classes <= 1000 form): per stage 1x1 conv, LN, GELU, bilinear x2,
    ConvNeXt block (k=3, expansion 1); then 1x1 conv to 3*16 and PixelShuffle(4)."""

    def __init__(self, widths: tuple[int, ...], in_chans: int):
        super().__init__()
        rev = list(reversed(widths))
        self.stages = nn.ModuleList(
            nn.ModuleDict(
                {
                    "proj": nn.Sequential(nn.Conv2d(a, b, 1), LayerNorm2d(b, eps=1e-6), nn.GELU()),
                    "block": ConvNeXtBlock(b, kernel_size=3, mlp_ratio=1.0, layer_scale=1e-6),
                }
            )
            for a, b in zip(rev[:-1], rev[1:])
        )
        self.out = nn.Sequential(nn.Conv2d(widths[0], in_chans * 16, 1), nn.PixelShuffle(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage["proj"](x)
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            x = stage["block"](x)
        return self.out(x)


def revcol_loss(
    logits: list[torch.Tensor],
    recons: list[torch.Tensor],
    target: torch.Tensor,
    images: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The paper's compound loss: weighted CE per head + BCE-with-logits reconstruction of the
    input min-max scaled to [0.01, 0.99] per image (the official code de-normalises with the
    ImageNet statistics instead; our inputs need not be ImageNet-normalised)."""
    ce_w, rec_w = aux_loss_weights(len(logits))
    loss = sum(
        w * F.cross_entropy(z, target, label_smoothing=label_smoothing)
        for w, z in zip(ce_w, logits)
    )
    if recons:
        flat = images.flatten(1)
        lo, hi = flat.min(1, keepdim=True)[0], flat.max(1, keepdim=True)[0]
        tgt = ((flat - lo) / (hi - lo).clamp_min(1e-6)).clamp(0.01, 0.99).view_as(images)
        loss = loss + sum(
            w * F.binary_cross_entropy_with_logits(r, tgt) for w, r in zip(rec_w, recons)
        )
    return loss
