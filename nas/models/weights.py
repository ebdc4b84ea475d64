"""Weights in: ``load_weights(model, source, format=...)`` loads a state_dict written by nas, by
timm (``convnext_*``, ``convnextv2_*``) or by the official ConvNeXt V2 code (dense form) into a
nas network of the same structure, strictly. Names are translated; shapes are changed only where
the two codes store the same tensor differently (timm's 1x1-conv MLP weights and (C,) GRN
parameters). ``torch.load(..., weights_only=True)`` only.

Not yet here (issue 18): the official RepLKNet, RevCol and Container-Light layouts, the official
FCMAE sparse checkpoints, and the way out (``nas export --format timm``).
"""

from __future__ import annotations

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
}
_SIGNS = {  # a key only that format has
    "timm": "stages.0.blocks.0.conv_dw.weight",
    "convnextv2-official": "downsample_layers.0.0.weight",
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
    load_state_strictly(
        model, translate(weights, model, fmt), where=f"{where} ({fmt})", strict=strict
    )
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
    model: nn.Module, weights: Mapping[str, torch.Tensor], *, where: str, strict: bool = True
) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [k for k in own if k in weights and tuple(own[k].shape) != tuple(weights[k].shape)]
    if shapes or (strict and (missing or unexpected)):
        raise UserError(
            f"{where}: not this network's structure: "
            + _mismatch(
                own, weights, missing if strict else [], unexpected if strict else [], shapes
            )
        )
    model.load_state_dict(dict(weights), strict=strict)


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
