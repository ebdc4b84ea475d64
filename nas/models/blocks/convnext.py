"""ConvNeXt V1/V2 block.

Liu et al., "A ConvNet for the 2020s", CVPR 2022 (arXiv 2201.03545), and Woo et al.,
"ConvNeXt V2: Co-designing and Scaling ConvNets with Masked Autoencoders", CVPR 2023
(arXiv 2301.00808), fig. 5: DW 7x7 -> LN -> Linear 4x -> GELU [-> GRN] -> Linear -> [LayerScale]
-> DropPath -> residual.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.models.blocks.grn import GRN
from nas.models.blocks.mixer import AffinityMixer, check_mixer
from nas.models.blocks.norm import NORMS, DropPath, expanded_width, layer_scale_module
from nas.models.blocks.reparam import RepDWConv

__all__ = ["ConvNeXtBlock"]


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block; with the defaults and ``grn=True`` exactly the ConvNeXt V2 block.

    Args:
        dim: channels C.
        kernel_size: depthwise kernel (7 in the papers).
        small_kernel: if > 0, a parallel k x k depthwise branch with BN (RepLKNet-style, merged by
            ``reparameterize``). Departure from ConvNeXt, which has no such branch.
        mixer: ``static`` is the ConvNeXt depthwise conv; other ``MIXERS`` replace it by an
            ``AffinityMixer`` with V and output 1x1 projections (Container-style extension).
        head_dim, tokens: options of attention / ``static_global`` mixers.
        mlp_ratio: hidden width = int(mlp_ratio * dim) of the inverted bottleneck.
        grn: ConvNeXt V2 GRN after the GELU.
        layer_scale: 0 for none (V2), else LayerScale init value (V1 uses 1e-6).
        norm: ``ln`` (LayerNorm eps 1e-6, channels-last, as in ConvNeXt) or ``bn`` (BatchNorm2d
            before the permute; a departure, for design-space exploration).
        drop_path: stochastic depth rate of the residual branch.
    """

    def __init__(
        self,
        dim: int,
        *,
        kernel_size: int = 7,
        small_kernel: int = 0,
        mixer: str = "static",
        head_dim: int = 32,
        tokens: int | None = None,
        mlp_ratio: float = 4.0,
        grn: bool = False,
        layer_scale: float = 0.0,
        norm: str = "ln",
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        check_mixer(mixer)
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {sorted(NORMS)}")
        hidden = expanded_width(dim, mlp_ratio)
        if mixer == "static":
            # with small_kernel == 0 the large conv (with bias, no BN) is the only branch
            self.mixer = RepDWConv(
                dim, kernel_size, small_kernel=small_kernel, bn=False, small_bn=True
            )
        else:
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
        self.norm_channels_last = norm == "ln"
        self.norm = nn.LayerNorm(dim, eps=1e-6) if norm == "ln" else nn.BatchNorm2d(dim)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.grn = GRN(hidden, channels_last=True) if grn else nn.Identity()
        self.pwconv2 = nn.Linear(hidden, dim)
        self.ls = layer_scale_module(dim, layer_scale, channels_last=True)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mixer(x)
        if not self.norm_channels_last:
            y = self.norm(y)
        y = y.permute(0, 2, 3, 1)  # NCHW -> NHWC
        if self.norm_channels_last:
            y = self.norm(y)
        y = self.pwconv2(self.grn(self.act(self.pwconv1(y))))
        y = self.ls(y).permute(0, 3, 1, 2)  # NHWC -> NCHW
        return x + self.drop_path(y)
