"""Effective receptive field (Luo et al., NeurIPS 2016; as measured in RepLKNet, Ding et al.,
CVPR 2022, sec. 5 and its ``erf/`` tools).

For a batch of images: the gradient of the sum over channels of the last stage's output at its
central position with respect to the input, its absolute value summed over the input channels,
averaged over the images: a (H, W) contribution map. ``erf_r<t>`` is the area of the smallest
square centred on the input's centre that holds t% of the total contribution, over the input area
(RepLKNet's "high-contribution area ratio"; smaller means a more concentrated ERF).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["ERF_THRESHOLDS", "erf_map", "erf_ratios", "log_scaled"]

ERF_THRESHOLDS = (0.2, 0.3, 0.5, 0.99)


def erf_map(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The (H, W) contribution map of ``model.forward_features`` on ``images`` (B, C, H, W).

    The model runs in eval mode (BatchNorm with its running statistics, so images do not
    interact), each image's gradient comes from one backward of the summed central responses."""
    was_training = model.training
    model.eval()
    try:
        x = images.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            feats = model.forward_features(x)
            h, w = feats.shape[-2:]
            feats[:, :, h // 2, w // 2].sum().backward()
    finally:
        model.train(was_training)
    return x.grad.abs().sum(dim=1).mean(dim=0).detach()


def erf_ratios(
    contribution: torch.Tensor, thresholds: Sequence[float] = ERF_THRESHOLDS
) -> dict[str, float]:
    """``{"erf_r20": ..., ...}``: for each threshold t, the area of the smallest square centred
    on the map's centre (clipped to the map) holding at least t of the total contribution, over
    the map's area. A map with no contribution gives NaN."""
    m = contribution.double()
    total = m.sum().item()
    rows, cols = m.shape
    cy, cx = rows // 2, cols // 2
    out = {}
    radii = range(max(rows, cols))
    inside = [_square(m, cy, cx, r) for r in radii]  # (sum, area) per half-width r
    for t in thresholds:
        key = f"erf_r{round(100 * t)}"
        if not total > 0:
            out[key] = math.nan
            continue
        area = next((a for s, a in inside if s >= t * total * (1 - 1e-12)), float(rows * cols))
        out[key] = area / (rows * cols)
    return out


def log_scaled(contribution) -> np.ndarray:
    """A map for display: ``log10(1 + 1000 x / max)`` (0 = none, 3 = the maximum), as RepLKNet
    shows its ERFs (a log scale: the contribution falls off by orders of magnitude)."""
    m = np.asarray(contribution, dtype=np.float64)
    top = m.max() if m.size else 0.0
    return np.log10(1 + m / max(top, 1e-300) * 1e3)


def _square(m: torch.Tensor, cy: int, cx: int, r: int) -> tuple[float, float]:
    y0, y1 = max(0, cy - r), min(m.shape[0], cy + r + 1)
    x0, x1 = max(0, cx - r), min(m.shape[1], cx + r + 1)
    return m[y0:y1, x0:x1].sum().item(), float((y1 - y0) * (x1 - x0))
