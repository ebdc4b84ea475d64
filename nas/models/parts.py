"""The parts every macro shares: stems, stride-2 transitions, heads and the blocks of a stage
(selected by block style), the stochastic-depth schedule and the papers' weight initialisation.
Built from a Candidate by ``nas.models.plain`` and ``nas.models.revcol``."""

from __future__ import annotations

import torch
from torch import nn

from nas.models.blocks import (
    ContainerBlock,
    ConvFFN,
    ConvNeXtBlock,
    LayerNorm2d,
    RepLKBlock,
    conv_bn,
)
from nas.space.candidate import Candidate
from nas.vocab import GLOBAL_MIXERS

__all__ = [
    "Head",
    "drop_path_rates",
    "init_weights",
    "make_head",
    "make_stem",
    "make_transition",
    "stage_blocks",
]


def make_stem(style: str, in_chans: int, dim: int) -> nn.Sequential:
    """Total stride 4. ConvNeXt: patchify 4x4 + LN; RepLKNet: 4 conv-BN-ReLU; Container: patch embed."""
    if style == "convnext":
        return nn.Sequential(nn.Conv2d(in_chans, dim, 4, stride=4), LayerNorm2d(dim, eps=1e-6))
    if style == "replk":
        return nn.Sequential(
            conv_bn(in_chans, dim, 3, stride=2, relu=True),
            conv_bn(dim, dim, 3, groups=dim, relu=True),
            conv_bn(dim, dim, 1, relu=True),
            conv_bn(dim, dim, 3, stride=2, groups=dim, relu=True),
        )
    if (
        style == "container"
    ):  # NOTE: LayerNorm with PyTorch's default eps 1e-5, as the reference code
        return nn.Sequential(nn.Conv2d(in_chans, dim, 4, stride=4), LayerNorm2d(dim, eps=1e-5))
    raise ValueError(f"unknown stem {style!r}; expected one of ['container', 'convnext', 'replk']")


def make_transition(style: str, c_in: int, c_out: int) -> nn.Sequential:
    """Stride-2 transition between stages."""
    if style == "convnext":  # LN before the conv
        return nn.Sequential(LayerNorm2d(c_in, eps=1e-6), nn.Conv2d(c_in, c_out, 2, stride=2))
    if style == "replk":
        return nn.Sequential(
            conv_bn(c_in, c_out, 1, relu=True),
            conv_bn(c_out, c_out, 3, stride=2, groups=c_out, relu=True),
        )
    if style == "container":  # patch embed: conv then LN
        return nn.Sequential(nn.Conv2d(c_in, c_out, 2, stride=2), LayerNorm2d(c_out, eps=1e-5))
    raise ValueError(
        f"unknown downsample {style!r}; expected one of ['container', 'convnext', 'replk']"
    )


class Head(nn.Module):
    """ConvNeXt: GAP -> LN -> Linear. RepLKNet / Container: BN -> GAP -> Linear."""

    def __init__(self, style: str, dim: int, num_classes: int):
        super().__init__()
        self.pre_norm = nn.BatchNorm2d(dim) if style in ("replk", "container") else None
        self.norm = nn.LayerNorm(dim, eps=1e-6) if style == "convnext" else None
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        x = x.mean((2, 3))
        if self.norm is not None:
            x = self.norm(x)
        return self.fc(x)


def make_head(style: str, dim: int, num_classes: int) -> Head:
    if style not in ("convnext", "replk", "container"):
        raise ValueError(
            f"unknown head {style!r}; expected one of ['container', 'convnext', 'replk']"
        )
    return Head(style, dim, num_classes)


def stage_blocks(c: Candidate, i: int, drop_rates: list[float]) -> nn.Sequential:
    """The blocks of stage (or RevCol level) ``i``; ``drop_rates`` has one rate per block."""
    dim, mixer = c.widths[i], c.mixers[i]
    common = dict(mixer=mixer, head_dim=c.head_dim or 32, small_kernel=c.small_kernels[i])
    common["tokens"] = c.stage_tokens(i) if mixer in GLOBAL_MIXERS else None
    blocks: list[nn.Module] = []
    for dp in drop_rates:
        if c.block == "convnext":
            blocks.append(
                ConvNeXtBlock(
                    dim,
                    kernel_size=c.kernels[i] or 7,
                    mlp_ratio=c.mlp_ratios[i],
                    grn=c.grn,
                    layer_scale=c.layer_scale,
                    norm=c.norm,
                    drop_path=dp,
                    **common,
                )
            )
        elif c.block == "replk":
            blocks.append(
                RepLKBlock(
                    dim,
                    kernel_size=c.kernels[i] or 3,
                    dw_ratio=c.dw_ratio,
                    layer_scale=c.layer_scale,
                    drop_path=dp,
                    **common,
                )
            )
            blocks.append(
                ConvFFN(
                    dim,
                    mlp_ratio=c.mlp_ratios[i],
                    grn=c.grn,
                    layer_scale=c.layer_scale,
                    drop_path=dp,
                )
            )
        else:
            blocks.append(
                ContainerBlock(
                    dim,
                    kernel_size=c.kernels[i] or 5,
                    mlp_ratio=c.mlp_ratios[i],
                    grn=c.grn,
                    layer_scale=c.layer_scale,
                    drop_path=dp,
                    **common,
                )
            )
    return nn.Sequential(*blocks)


def drop_path_rates(c: Candidate) -> list[list[float]]:
    """Linearly increasing stochastic depth over all blocks, split per stage."""
    n = sum(c.depths)
    rates = [c.drop_path * i / (n - 1) if n > 1 else 0.0 for i in range(n)]  # linspace(0, rate, n)
    out, start = [], 0
    for d in c.depths:
        out.append(rates[start : start + d])
        start += d
    return out


def init_weights(model: nn.Module, style: str) -> None:
    """ConvNeXt/RevCol: trunc_normal(0.02) on convs and linears; Container: on linears only;
    RepLKNet: PyTorch defaults (as the official code). Biases zero where re-initialised."""
    if style == "replk":
        return
    kinds = (nn.Linear,) if style == "container" else (nn.Linear, nn.Conv2d)
    for m in model.modules():
        if isinstance(m, kinds):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
