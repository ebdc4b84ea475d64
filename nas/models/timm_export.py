"""Weights out to timm: ``to_timm(model)`` gives, for a candidate timm's ConvNeXt class can build,
the state_dict in timm's names and shapes and the ``timm.create_model`` call that takes it
strictly (``timm.create_model(name, **kwargs).load_state_dict(state_dict)``). nas does not import
timm: the names and shapes are checked against timm 1.0.31's layouts in the tests.

timm can build a nas candidate when it is a plain ConvNeXt (V1 or V2): ConvNeXt blocks, stem,
transitions and head, LayerNorm, static depthwise mixers without a re-param branch, an MLP ratio
of 4 (GRN and LayerScale in any combination: ``convnextv2_*`` with GRN, ``convnext_*`` without)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nas.errors import UserError

__all__ = ["TIMM_SIZES", "timm_spec", "to_timm"]

# timm's ConvNeXt sizes: (depths, dims) -> size; the small ones use 1x1-conv MLPs (conv_mlp)
TIMM_SIZES: dict[tuple[tuple[int, ...], tuple[int, ...]], str] = {
    ((2, 2, 6, 2), (40, 80, 160, 320)): "atto",
    ((2, 2, 6, 2), (48, 96, 192, 384)): "femto",
    ((2, 2, 6, 2), (64, 128, 256, 512)): "pico",
    ((2, 2, 8, 2), (80, 160, 320, 640)): "nano",
    ((3, 3, 9, 3), (96, 192, 384, 768)): "tiny",
    ((3, 3, 27, 3), (96, 192, 384, 768)): "small",
    ((3, 3, 27, 3), (128, 256, 512, 1024)): "base",
    ((3, 3, 27, 3), (192, 384, 768, 1536)): "large",
}
_CONV_MLP = ("atto", "femto", "pico", "nano")


def timm_spec(candidate) -> dict[str, Any]:
    """``{"model_name", "kwargs", "conv_mlp"}`` of the timm model equal to ``candidate``; a
    UserError naming the first field timm cannot build."""
    c = candidate
    need = {
        "macro": "plain", "block": "convnext", "stem": "convnext", "downsample": "convnext",
        "head": "convnext", "norm": "ln",
    }  # fmt: skip
    for field, value in need.items():
        if getattr(c, field) != value:
            raise UserError(f"timm export: {field} is {getattr(c, field)!r}; timm's ConvNeXt needs {value!r}")  # fmt: skip
    checks = (
        (set(c.mixers) == {"static"}, "mixers", "static depthwise mixers only"),
        (not any(c.small_kernels), "small_kernels", "no re-param branch (0)"),
        (set(c.mlp_ratios) == {4.0}, "mlp_ratios", "4.0 in every stage"),
    )
    for ok, field, what in checks:
        if not ok:
            raise UserError(f"timm export: {field}: timm's ConvNeXt needs {what}")
    size = TIMM_SIZES.get((c.depths, c.widths))
    family = "convnextv2" if c.grn else "convnext"
    conv_mlp = size in _CONV_MLP
    kwargs: dict[str, Any] = {"num_classes": c.num_classes, "in_chans": c.in_chans}
    if size is None:  # timm takes any depths and dims as keyword arguments
        size, kwargs = "tiny", {**kwargs, "depths": list(c.depths), "dims": list(c.widths)}
    if set(c.kernels) != {7}:
        kwargs["kernel_sizes"] = list(c.kernels)
    ls = c.layer_scale if c.layer_scale > 0 else None
    if ls != (None if c.grn else 1e-6):  # timm's defaults: V2 none, V1 1e-6
        kwargs["ls_init_value"] = ls
    return {"model_name": f"{family}_{size}", "kwargs": kwargs, "conv_mlp": conv_mlp}


def to_timm(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict in timm's names and shapes, ``timm_spec``) of a nas model."""
    spec = timm_spec(model.candidate)
    out = {}
    for key, value in model.state_dict().items():
        name = _timm_name(key)
        if spec["conv_mlp"] and ".mlp.fc" in name and name.endswith("weight"):
            value = value.reshape(*value.shape, 1, 1)
        elif ".mlp.grn." in name:
            value = value.reshape(-1)
        out[name] = value.clone()
    return out, {k: v for k, v in spec.items() if k != "conv_mlp"}


def _timm_name(key: str) -> str:
    parts = key.split(".")
    if parts[0] == "transitions":
        return f"stages.{parts[1]}.downsample.{'.'.join(parts[2:])}"
    if parts[0] != "stages":
        return key  # stem.*, head.norm.*, head.fc.*
    stage, block, rest = parts[1], parts[2], ".".join(parts[3:])
    rest = {
        "mixer.large.conv.weight": "conv_dw.weight",
        "mixer.large.conv.bias": "conv_dw.bias",
        "pwconv1.weight": "mlp.fc1.weight",
        "pwconv1.bias": "mlp.fc1.bias",
        "pwconv2.weight": "mlp.fc2.weight",
        "pwconv2.bias": "mlp.fc2.bias",
        "grn.gamma": "mlp.grn.weight",
        "grn.beta": "mlp.grn.bias",
        "ls.gamma": "gamma",
    }.get(rest, rest)
    return f"stages.{stage}.blocks.{block}.{rest}"
