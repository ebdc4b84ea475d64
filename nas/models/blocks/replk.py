"""RepLKNet blocks: the RepLK Block and ConvFFN.

Ding et al., "Scaling Up Your Kernels to 31x31: Revisiting Large Kernel Design in CNNs",
CVPR 2022 (arXiv 2203.06717), fig. 4: pre-BN -> 1x1 conv-BN-ReLU -> DW K x K (+ DW 5x5, merged
after training) -> ReLU -> 1x1 conv-BN -> DropPath -> residual; ConvFFN: pre-BN -> 1x1 conv-BN 4x
-> GELU -> 1x1 conv-BN -> DropPath -> residual.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nas.models.blocks.grn import GRN
from nas.models.blocks.mixer import AffinityMixer, check_mixer
from nas.models.blocks.norm import DropPath, expanded_width, layer_scale_module
from nas.models.blocks.reparam import RepDWConv

__all__ = ["ConvFFN", "RepLKBlock", "conv_bn"]


def conv_bn(
    c_in: int, c_out: int, k: int, *, stride: int = 1, groups: int = 1, relu: bool = False
) -> nn.Sequential:
    """Conv k x k (padding k // 2, no bias) -> BN [-> ReLU], children ``conv``, ``bn``, ``relu``."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        bn=nn.BatchNorm2d(c_out),
    )
    if relu:
        layers["relu"] = nn.ReLU()
    return nn.Sequential(layers)


class RepLKBlock(nn.Module):
    """RepLKNet's RepLK Block: ``x + DropPath(pw2(ReLU(lk(pw1(pre_bn(x))))))``.

    Args:
        dim: channels C.
        kernel_size: the large depthwise kernel K (31, 29, 27, 13 in RepLKNet-31B).
        small_kernel: the parallel re-parameterisation kernel k (5; 0 for none, as in XL).
        dw_ratio: width of the 1x1 expansion around the large kernel, int(dw_ratio * dim).
        mixer: ``static`` is the RepLKNet large kernel; other ``MIXERS`` replace it by an
            ``AffinityMixer`` without V/output projections on the pw1 output (extension).
        head_dim, tokens: options of attention / ``static_global`` mixers.
        layer_scale: LayerScale init on the residual branch; 0 = off, as RepLKNet (extension:
            RevCol puts LayerScale 1e-6 on every block it stacks, which keeps columns invertible).
        drop_path: stochastic depth rate.
    """

    def __init__(
        self,
        dim: int,
        *,
        kernel_size: int = 31,
        small_kernel: int = 5,
        dw_ratio: float = 1.0,
        mixer: str = "static",
        head_dim: int = 32,
        tokens: int | None = None,
        layer_scale: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        check_mixer(mixer)
        inner = expanded_width(dim, dw_ratio, name="dw_ratio")
        self.pre_bn = nn.BatchNorm2d(dim)
        self.pw1 = conv_bn(dim, inner, 1, relu=True)
        if mixer == "static":
            self.lk = RepDWConv(
                inner, kernel_size, small_kernel=small_kernel, bn=True, small_bn=True
            )
        else:
            self.lk = AffinityMixer(
                inner,
                mode=mixer,
                kernel_size=kernel_size,
                small_kernel=small_kernel,
                dw_bn=True,
                head_dim=head_dim,
                tokens=tokens,
                v_proj=False,
                out_proj=False,
            )
        self.lk_act = nn.ReLU()
        self.pw2 = conv_bn(inner, dim, 1)
        self.ls = layer_scale_module(dim, layer_scale, channels_last=False)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw2(self.lk_act(self.lk(self.pw1(self.pre_bn(x)))))
        return x + self.drop_path(self.ls(y))


class ConvFFN(nn.Module):
    """RepLKNet's ConvFFN: ``x + DropPath(pw2(GELU(pw1(pre_bn(x)))))``, 1x1 conv-BN pairs.

    ``grn=True`` adds a channels-first ConvNeXt V2 GRN after the GELU and ``layer_scale > 0``
    a LayerScale on the residual branch (extensions, not in RepLKNet).
    """

    def __init__(
        self,
        dim: int,
        *,
        mlp_ratio: float = 4.0,
        grn: bool = False,
        layer_scale: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = expanded_width(dim, mlp_ratio)
        self.pre_bn = nn.BatchNorm2d(dim)
        self.pw1 = conv_bn(dim, hidden, 1)
        self.act = nn.GELU()
        self.grn = GRN(hidden, channels_last=False) if grn else nn.Identity()
        self.pw2 = conv_bn(hidden, dim, 1)
        self.ls = layer_scale_module(dim, layer_scale, channels_last=False)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw2(self.grn(self.act(self.pw1(self.pre_bn(x)))))
        return x + self.drop_path(self.ls(y))
