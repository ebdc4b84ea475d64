"""Global Response Normalization (GRN).

Woo et al., "ConvNeXt V2: Co-designing and Scaling ConvNets with Masked Autoencoders",
CVPR 2023 (arXiv 2301.00808), section 3 / eq. 1-3.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GRN"]


class GRN(nn.Module):
    """GRN as in the official ConvNeXt V2 PyTorch code.

    For each sample n and channel c: ``G = ||X[n, :, :, c]||_2`` over H and W only,
    ``Nx = G / (mean_c G + eps)``, ``Y = gamma * (X * Nx) + beta + X``. ``gamma`` and ``beta``
    start at zero, so GRN is the identity at init.

    Args:
        dim: number of channels C.
        channels_last: NHWC input with (1, 1, 1, C) parameters if True (the ConvNeXt V2 block),
            NCHW input with (1, C, 1, 1) parameters if False (1x1-conv MLPs).
        eps: added to the channel mean (denominator only), 1e-6 in the official code.
    """

    def __init__(self, dim: int, *, channels_last: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.eps = eps
        shape = (1, 1, 1, dim) if channels_last else (1, dim, 1, 1)
        self.gamma = nn.Parameter(torch.zeros(shape))
        self.beta = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial, channel = ((1, 2), -1) if self.channels_last else ((2, 3), 1)
        # NOTE: the official code divides by the channel *mean*, paper eq. 2 by the sum; gamma
        # absorbs the constant and the released checkpoints use the mean.
        # The spatial L2 norm of half precision is taken in fp32: in fp16 a 64x64 map of 1200s
        # overflows to inf. fp32 and fp64 stay as they are.
        wide = x if x.dtype in (torch.float32, torch.float64) else x.float()
        # sqrt(sum(x^2)) rather than linalg.vector_norm: the same L2 norm, ~8x faster on CPU for
        # this strided (spatial) reduction in eager mode. The clamp keeps an all-zero channel's
        # gradient at 0 (as vector_norm's), not 0 * inf = NaN; its value moves by < 1e-19.
        sq = wide.square().sum(dim=spatial, keepdim=True)
        g = sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt()
        nx = (g / (g.mean(dim=channel, keepdim=True) + self.eps)).to(x.dtype)
        # gamma * (x * nx) + beta + x == x * (1 + gamma * nx) + beta: the factor is a small
        # (B, 1, 1, C) tensor, so the big one is read once and written once (one fused addcmul)
        return torch.addcmul(self.beta, x, 1 + self.gamma * nx)

    def extra_repr(self) -> str:
        return f"{self.gamma.numel()}, channels_last={self.channels_last}, eps={self.eps}"
