"""Weights in: ``load_weights(model, source, format=...)`` loads a state_dict written by nas, by
timm (``convnext_*``, ``convnextv2_*``), by the official ConvNeXt V2 code (dense form), by the
official RepLKNet code (training and deploy form), by the official RevCol code (without
intermediate supervision) or by the official Container-Light code into a nas network of the same
structure, strictly. Names are translated; shapes are changed only where
the two codes store the same tensor differently (timm's 1x1-conv MLP weights and (C,) GRN
parameters). ``torch.load(..., weights_only=True)`` only.

Not yet here (issue 18): RevCol's intermediate-supervision heads and decoders, the official FCMAE sparse checkpoints, and the way
out (``nas export --format timm``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from nas.errors import UserError

__all__ = [
    "FORMATS",
    "detect_format",
    "load_state_strictly",
    "load_weights",
    "read_state",
    "translate",
]


def _timm_convnext(key: str, value: torch.Tensor, own: Mapping[str, torch.Tensor]):
    """timm ConvNeXt / ConvNeXt V2 -> nas."""
    rules = (
        (r"stages\.(\d+)\.downsample\.(\d)\.(weight|bias)", r"transitions.\1.\2.\3"),
        (r"stages\.(\d+)\.blocks\.(\d+)\.conv_dw\.", r"stages.\1.\2.mixer.large.conv."),
        (r"stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.", r"stages.\1.\2.pwconv1."),
        (r"stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.", r"stages.\1.\2.pwconv2."),
        (r"stages\.(\d+)\.blocks\.(\d+)\.mlp\.grn\.weight", r"stages.\1.\2.grn.gamma"),
        (r"stages\.(\d+)\.blocks\.(\d+)\.mlp\.grn\.bias", r"stages.\1.\2.grn.beta"),
        (r"stages\.(\d+)\.blocks\.(\d+)\.gamma", r"stages.\1.\2.ls.gamma"),
        (r"stages\.(\d+)\.blocks\.(\d+)\.norm\.", r"stages.\1.\2.norm."),
    )
    return _rename(key, value, own, rules)


def _official_convnextv2(key: str, value: torch.Tensor, own: Mapping[str, torch.Tensor]):
    """facebookresearch/ConvNeXt-V2 ``models/convnextv2.py`` (dense) -> nas."""
    rules = (
        (r"downsample_layers\.0\.(\d)\.", r"stem.\1."),
        (r"downsample_layers\.(\d+)\.(\d)\.", r"transitions.\1.\2."),
        (r"stages\.(\d+)\.(\d+)\.dwconv\.", r"stages.\1.\2.mixer.large.conv."),
        (r"norm\.(weight|bias)", r"head.norm.\1"),
        (r"head\.(weight|bias)", r"head.fc.\1"),
    )
    return _rename(key, value, own, rules)


def _official_revcol(key: str, value: torch.Tensor, own: Mapping[str, torch.Tensor]):
    """megvii-research/RevCol ``models/revcol.py`` (without intermediate supervision) -> nas,
    into a candidate with ``revcol_alpha: official`` (the raw alphas are taken as they are)."""
    block = r"subnet(\d+)\.level(\d+)\.blocks\.(\d+)\."
    rules = (
        (r"subnet(\d+)\.alpha(\d+)", r"columns.\1.alphas.\2"),
        (r"subnet(\d+)\.level(\d+)\.fusion\.down\.", r"columns.\1.levels.\2.down."),
        (
            r"subnet(\d+)\.level(\d+)\.fusion\.up\.channel_reschedule\.0\.",
            r"columns.\1.levels.\2.up.proj.",
        ),
        (
            r"subnet(\d+)\.level(\d+)\.fusion\.up\.channel_reschedule\.1\.",
            r"columns.\1.levels.\2.up.norm.",
        ),
        (block + r"dwconv\.", r"columns.\1.levels.\2.blocks.\3.mixer.large.conv."),
        (block + r"gamma", r"columns.\1.levels.\2.blocks.\3.ls.gamma"),
        (block, r"columns.\1.levels.\2.blocks.\3."),
        (r"cls\.classifier\.0\.", r"head.norm."),
        (r"cls\.classifier\.1\.", r"head.fc."),
        # intermediate supervision: cls_blocks.k (the last is the model's head), decoder_blocks.k
        (r"cls_blocks\.(\d+)\.classifier\.0\.", r"aux_heads.\1.norm."),
        (r"cls_blocks\.(\d+)\.classifier\.1\.", r"aux_heads.\1.fc."),
        (
            r"decoder_blocks\.(\d+)\.normal_layers\.(\d+)\.0\.dwconv\.",
            r"decoders.\1.stages.\2.block.mixer.large.conv.",
        ),
        (
            r"decoder_blocks\.(\d+)\.normal_layers\.(\d+)\.0\.gamma",
            r"decoders.\1.stages.\2.block.ls.gamma",
        ),
        (
            r"decoder_blocks\.(\d+)\.normal_layers\.(\d+)\.0\.",
            r"decoders.\1.stages.\2.block.",
        ),
        (r"decoder_blocks\.(\d+)\.proj_layers\.(\d+)\.", r"decoders.\1.stages.\2.proj."),
        (r"decoder_blocks\.(\d+)\.projback\.", r"decoders.\1.out."),
    )
    key, value = _rename(key, value, own, rules)
    if key.startswith("aux_heads.") and key not in own:  # the last cls_block is the head
        key = "head." + key.split(".", 2)[2]
    return key, value


def _official_replknet(key: str, value: torch.Tensor, own: Mapping[str, torch.Tensor]):
    """DingXiaoH/RepLKNet-pytorch ``replknet.py`` -> nas, training form and the deploy form of
    ``structural_reparam()`` (``lkb_reparam``: nas's fused conv)."""
    block = r"stages\.(\d+)\.blocks\.(\d+)\."
    rules = (
        (block + r"(prelkb_bn|preffn_bn)\.", r"stages.\1.\2.pre_bn."),
        (block + r"large_kernel\.lkb_origin\.", r"stages.\1.\2.lk.large."),
        (block + r"large_kernel\.small_conv\.", r"stages.\1.\2.lk.small."),
        (block + r"large_kernel\.lkb_reparam\.", r"stages.\1.\2.lk.fused."),
        (block, r"stages.\1.\2."),
        # the official transitions sit between stages i and i + 1; nas numbers them by stage i + 1
        (r"transitions\.(\d+)\.", lambda m: f"transitions.{int(m.group(1)) + 1}."),
        (r"norm\.", r"head.pre_norm."),
        (r"head\.(weight|bias)", r"head.fc.\1"),
    )
    return _rename(key, value, own, rules)


def _official_container(key: str, value: torch.Tensor, own: Mapping[str, torch.Tensor]):
    """allenai/container ``models.py`` ``container_v1_light`` -> nas (CBlock: V ``conv1``, the
    5x5 depthwise ``attn``, ``conv2``; MixBlock: ``conv1`` is QKV, ``conv`` the depthwise conv,
    ``sa_weight`` the gate)."""
    block = r"blocks(\d)\.(\d+)\."

    def stage(m: re.Match) -> str:
        return f"stages.{int(m.group(1)) - 1}.{m.group(2)}."

    rules = (
        (r"patch_embed1\.proj\.", r"stem.0."),
        (r"patch_embed1\.norm\.", r"stem.1."),
        (r"patch_embed(\d)\.proj\.", lambda m: f"transitions.{int(m.group(1)) - 1}.0."),
        (r"patch_embed(\d)\.norm\.", lambda m: f"transitions.{int(m.group(1)) - 1}.1."),
        (block + r"conv1\.", lambda m: stage(m) + "mixer.v."),
        (block + r"conv2\.", lambda m: stage(m) + "mixer.proj."),
        (block + r"(attn|conv)\.", lambda m: stage(m) + "mixer.dw.large.conv."),
        (block + r"sa_weight", lambda m: stage(m) + "mixer.gate"),
        (block, stage),
        (r"norm\.", r"head.pre_norm."),
        (r"head\.(weight|bias)", r"head.fc.\1"),
    )
    key, value = _rename(key, value, own, rules)
    if key not in own and key.replace(".mixer.v.", ".mixer.qkv.") in own:  # a MixBlock's QKV
        key = key.replace(".mixer.v.", ".mixer.qkv.")
    return key, value


def _official_fcmae(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official FCMAE pre-training checkpoint (``SparseConvNeXtV2`` encoder, MinkowskiEngine
    tensors) -> the official dense ConvNeXt V2 names and shapes, as ``utils.remap_checkpoint_keys``
    of the official code does: only the ``encoder.`` module is kept (the decoder, projection,
    prediction and mask token are other modules, dropped by module, not by key substring);
    Minkowski kernels (k*k, in, out) and depthwise (k*k, C) become (out, in, k, k) and (C, 1, k, k)
    with the two spatial axes transposed; ``ln``/``linear`` wrappers are unwrapped; (1, C) biases
    become (C,) and GRN's (1, C) parameters (1, 1, 1, C)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        if not key.startswith("encoder."):
            continue
        key = key.removeprefix("encoder.")
        parts = key.split(".")
        if parts[-1] == "kernel":
            ks = math.isqrt(value.shape[0])
            if value.dim() == 3:  # (k*k, in, out): a dense (strided) convolution
                _, c_in, c_out = value.shape
                value = value.permute(2, 1, 0).reshape(c_out, c_in, ks, ks).transpose(3, 2)
            else:  # (k*k, C): depthwise
                value = value.permute(1, 0).reshape(value.shape[1], 1, ks, ks).transpose(3, 2)
            key = ".".join([*parts[:-1], "weight"])
        elif len(parts) >= 2 and parts[-2] in ("ln", "linear"):
            key = ".".join(parts[:-2] + parts[-1:])
        if ".grn." in f".{key}":
            value = value.reshape(1, 1, 1, -1)
        elif key.endswith("bias") and value.dim() != 1:
            value = value.reshape(-1)
        out[key] = value.contiguous()
    return out


def _rename(key, value, own, rules) -> tuple[str, torch.Tensor]:
    for pattern, repl in rules:
        if re.fullmatch(pattern + (".*" if pattern.endswith(r"\.") else ""), key):
            key = re.sub("^" + pattern, repl, key)
            break
    target = own.get(key)
    if target is not None and target.shape != value.shape and target.numel() == value.numel():
        value = value.reshape(target.shape)  # 1x1-conv MLP (C, C', 1, 1); GRN (C,) -> (1, 1, 1, C)
    return key, value


FORMATS: dict[str, Callable | None] = {
    "nas": None,
    "timm": _timm_convnext,
    "convnextv2-official": _official_convnextv2,
    "revcol-official": _official_revcol,
    "replknet-official": _official_replknet,
    "container-official": _official_container,
    "convnextv2-fcmae": _official_convnextv2,  # after _official_fcmae (see translate)
}
_SIGNS = {  # a key only that format has
    "convnextv2-fcmae": "encoder.stages.0.0.dwconv.kernel",
    "timm": "stages.0.blocks.0.conv_dw.weight",
    "convnextv2-official": "downsample_layers.0.0.weight",
    "revcol-official": "subnet0.alpha0",
    "replknet-official": "stages.0.blocks.0.prelkb_bn.weight",
    "container-official": "patch_embed1.proj.weight",
}


def detect_format(weights: Mapping[str, torch.Tensor]) -> str:
    for name, key in _SIGNS.items():
        if key in weights:
            return name
    return "nas"


def translate(
    weights: Mapping[str, torch.Tensor], model: nn.Module, fmt: str
) -> dict[str, torch.Tensor]:
    """The state_dict in nas's names (and shapes where the codes differ) for ``model``."""
    if fmt not in FORMATS:
        raise UserError(f"format: expected one of {list(FORMATS)}, got {fmt!r}")
    rename = FORMATS[fmt]
    if rename is None:
        return dict(weights)
    if fmt == "convnextv2-fcmae":
        weights = _official_fcmae(weights)
    own = model.state_dict()
    return dict(rename(k, v, own) for k, v in weights.items())


def load_weights(
    model: nn.Module,
    source: str | Path | Mapping[str, torch.Tensor],
    *,
    format: str | None = None,  # noqa: A002 - the word users know
    strict: bool = True,
) -> str:
    """Load ``source`` (a path or a state_dict; a checkpoint's ``model``/``state_dict``/
    ``encoder`` entry is used when present) into ``model``; returns the format used (detected
    when not given). A mismatch is one UserError listing missing, unexpected and mis-shaped
    tensors (the first few, then a count)."""
    where = str(source) if isinstance(source, (str, Path)) else "weights"
    weights = read_state(source) if isinstance(source, (str, Path)) else dict(source)
    for entry in ("model", "state_dict", "encoder"):
        if isinstance(weights.get(entry), Mapping):
            weights = dict(weights[entry])
            break
    fmt = format or detect_format(weights)
    # a pre-training checkpoint has no classifier: the head keeps its initialisation
    headless = ("head.",) if fmt == "convnextv2-fcmae" else ()
    load_state_strictly(
        model, translate(weights, model, fmt), where=f"{where} ({fmt})", strict=strict,
        may_miss=headless,
    )  # fmt: skip
    return fmt


def read_state(path: str | Path, *, label: str | None = None) -> dict:
    """A mapping saved with ``torch.save``, read with ``weights_only=True``; one clear line
    (starting with ``label``, default the path) when it is missing or not such a file."""
    p, label = Path(path), label or str(path)
    if not p.is_file():
        raise UserError(f"{label}: no such file")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file fails in many ways
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(
            f"{label}: not a weights file torch can read ({type(e).__name__}: {first})"
        ) from None
    if not isinstance(state, Mapping):
        raise UserError(f"{label}: expected a state_dict (a mapping), got {type(state).__name__}")
    return dict(state)


def load_state_strictly(
    model: nn.Module,
    weights: Mapping[str, torch.Tensor],
    *,
    where: str,
    strict: bool = True,
    may_miss: tuple[str, ...] = (),
) -> None:
    """Load ``weights`` into ``model``; any missing (except names starting with ``may_miss``),
    unexpected or mis-shaped tensor is one UserError naming them."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights and not (may_miss and k.startswith(may_miss))]
    unexpected = [k for k in weights if k not in own]
    shapes = [k for k in own if k in weights and tuple(own[k].shape) != tuple(weights[k].shape)]
    if shapes or (strict and (missing or unexpected)):
        raise UserError(
            f"{where}: not this network's structure: "
            + _mismatch(
                own, weights, missing if strict else [], unexpected if strict else [], shapes
            )
        )
    model.load_state_dict(dict(weights), strict=strict and not may_miss)


def _mismatch(own, weights, missing, unexpected, shapes) -> str:
    def listed(keys, shape_of) -> str:
        shown = ", ".join(f"{k} {tuple(shape_of[k].shape)}" for k in keys[:3])
        return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    parts = []
    if missing:
        parts.append(f"missing {listed(missing, own)}")
    if unexpected:
        parts.append(f"unexpected {listed(unexpected, weights)}")
    if shapes:
        parts.append(
            "shape mismatch "
            + ", ".join(
                f"{k} {tuple(weights[k].shape)} in the file, {tuple(own[k].shape)} here"
                for k in shapes[:3]
            )
            + (f" and {len(shapes) - 3} more" if len(shapes) > 3 else "")
        )
    return "; ".join(parts)
