"""Container-Light blocks (CBlock / MixBlock) as one block with a selectable mixer.

Gao et al., "Container: Context Aggregation Network", NeurIPS 2021 (arXiv 2106.01401), and the
official Container-Light code (allenai/container ``models.py``): conditional positional
encoding (DW 3x3 residual), then ``x + DropPath(proj(A V))`` and ``x + DropPath(CMlp(x))``, both
with BatchNorm pre-norm.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nas.models.blocks.grn import GRN
from nas.models.blocks.mixer import AffinityMixer
from nas.models.blocks.norm import DropPath, expanded_width, layer_scale_module

__all__ = ["ContainerBlock"]


def _cmlp(dim: int, hidden: int, *, grn: bool) -> nn.Sequential:
    """Container's CMlp: 1x1 conv -> GELU [-> GRN, extension] -> 1x1 conv, all with bias."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(fc1=nn.Conv2d(dim, hidden, 1), act=nn.GELU())
    if grn:
        layers["grn"] = GRN(hidden, channels_last=False)
    layers["fc2"] = nn.Conv2d(hidden, dim, 1)
    return nn.Sequential(layers)


class ContainerBlock(nn.Module):
    """Container block: ``mixer="static"`` is Container-Light's CBlock, ``"mixed"`` its MixBlock.

    CBlock: V = 1x1 conv, static affinity = DW 5x5 (bias, no BN), 1x1 conv out. MixBlock: one
    1x1 conv to [Q; K; V] (3C, bias), multi-head attention and DW 5x5 on the same V, blended
    ``sigmoid(w) * SA + (1 - sigmoid(w)) * CV`` with the scalar ``w`` initialised to 0, 1x1 out.

    Args:
        dim: channels C.
        mixer: one of ``MIXERS``; ``dynamic`` (attention only) and ``static_global`` (N x N
            matrix, the paper's full Container affinity) are built the same way.
        kernel_size: the static DW kernel (5 in Container-Light).
        small_kernel: if > 0, a parallel DW k x k with BN merged by ``reparameterize``
            (RepLKNet-style extension).
        head_dim: channels per attention head (32 in Container-Light stage 4).
        tokens: N = H * W for ``static_global``.
        mlp_ratio: CMlp hidden width int(mlp_ratio * dim) (8 in stages 1-2, 4 in 3-4).
        grn: channels-first GRN after the CMlp GELU (extension).
        layer_scale: 0 for none (Container), else LayerScale init on both branches (extension).
        drop_path: stochastic depth rate of both residual branches.
    """

    def __init__(
        self,
        dim: int,
        *,
        mixer: str = "static",
        kernel_size: int = 5,
        small_kernel: int = 0,
        head_dim: int = 32,
        tokens: int | None = None,
        mlp_ratio: float = 4.0,
        grn: bool = False,
        layer_scale: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = expanded_width(dim, mlp_ratio)
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.mixer = AffinityMixer(
            dim,
            mode=mixer,
            kernel_size=kernel_size,
            small_kernel=small_kernel,
            dw_bn=False,
            head_dim=head_dim,
            tokens=tokens,
            v_proj=True,
            out_proj=True,
        )
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = _cmlp(dim, hidden, grn=grn)
        self.ls1 = layer_scale_module(dim, layer_scale, channels_last=False)
        self.ls2 = layer_scale_module(dim, layer_scale, channels_last=False)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)  # conditional positional encoding
        x = x + self.drop_path(self.ls1(self.mixer(self.norm1(x))))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))
