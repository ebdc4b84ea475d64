"""Normalisation and residual helpers shared by the blocks.

* ``LayerNorm2d``: LayerNorm over the channels of an NCHW tensor, the channels-first LayerNorm
  of ConvNeXt (Liu et al., "A ConvNet for the 2020s", CVPR 2022) used in its stem/downsamplers.
* ``LayerScale``: per-channel learnable residual scale (Touvron et al., "Going deeper with Image
  Transformers", ICCV 2021), as used by ConvNeXt V1 with init 1e-6.
* ``DropPath``: per-sample stochastic depth (Huang et al., "Deep Networks with Stochastic Depth",
  ECCV 2016), scaled by the keep probability as in the ConvNeXt/RepLKNet/Container code.
* ``make_norm2d``: the block norm chosen by name (``ln`` or ``bn``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.vocab import NORMS

__all__ = ["NORM_EPS", "NORMS", "DropPath", "LayerNorm2d", "LayerScale", "make_norm2d"]

# name -> default eps; LayerNorm follows ConvNeXt (1e-6), BatchNorm PyTorch's default (1e-5)
NORM_EPS: dict[str, float] = {"ln": 1e-6, "bn": 1e-5}  # default eps of each norm in NORMS


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over C of an NCHW tensor (ConvNeXt's ``data_format="channels_first"`` LN).

    Same maths as ``(x - mean_C) / sqrt(var_C + eps) * weight + bias`` per pixel; parameters
    ``weight`` and ``bias`` of shape (C,).
    """

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """Multiply by a learnable per-channel ``gamma`` initialised to ``init`` (CaiT, ConvNeXt V1).

    ``channels_last`` selects NHWC (``gamma`` broadcast over the last axis) or NCHW input.
    """

    def __init__(self, dim: int, init: float, *, channels_last: bool = True) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gamma = self.gamma if self.channels_last else self.gamma.view(-1, 1, 1)
        return x * gamma

    def extra_repr(self) -> str:
        return f"{self.gamma.numel()}, channels_last={self.channels_last}"


class DropPath(nn.Module):
    """Per-sample stochastic depth: zero a whole residual branch with probability ``p``.

    Kept samples are scaled by 1/(1-p) so the expectation is unchanged. Identity in eval mode or
    when ``p == 0``.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop_path: expected 0 <= p < 1, got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def make_norm2d(kind: str, dim: int, *, eps: float | None = None) -> nn.Module:
    """An NCHW norm by name: ``ln`` -> LayerNorm2d (eps 1e-6), ``bn`` -> BatchNorm2d (eps 1e-5)."""
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; expected one of {sorted(NORMS)}")
    eps = NORM_EPS[kind] if eps is None else eps
    if kind == "ln":
        return LayerNorm2d(dim, eps=eps)
    return nn.BatchNorm2d(dim, eps=eps)


def expanded_width(dim: int, ratio: float, *, name: str = "mlp_ratio") -> int:
    """``int(ratio * dim)``, refusing a width below 1 with the argument's name."""
    width = int(ratio * dim)
    if width < 1:
        raise ValueError(f"{name}: expected int({name} * dim) >= 1, got {ratio} * {dim}")
    return width


def layer_scale_module(dim: int, init: float, *, channels_last: bool) -> nn.Module:
    """LayerScale with ``init`` (> 0), or Identity for 0 (off); a negative init is refused."""
    if init < 0:
        raise ValueError(f"layer_scale: expected 0 (off) or a positive init value, got {init}")
    return LayerScale(dim, init, channels_last=channels_last) if init > 0 else nn.Identity()
