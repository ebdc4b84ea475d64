"""A block-level latency predictor: a candidate's deploy-form latency as the sum of its parts'.

After nn-Meter (Zhang et al., MobiSys 2021: kernel-level predictors fitted once per device) and
the per-block lookup tables of FBNet / ProxylessNAS / Once-for-All. A candidate's deploy model is
cut into *parts* (stem layers, transitions, each block, head, RevCol's fusion units: the modules
below the containers ``Sequential``, ``ModuleList``, RevCol ``Column`` and ``Level``), each with
its input shapes (``model_parts``). A part's *signature* is its exact configuration and input; its
*group* the same with every number blanked out (one block style x mixer x norm, any width, kernel
or resolution). The model holds

* a lookup table: signature -> milliseconds, every part the fit timed (exact for those);
* per group, a least-squares fit of milliseconds on the part's MACs, input and output elements
  and an attention term, for parts the table lacks, with the range of each feature it saw: a
  prediction outside that range, or of a group never fitted, says so (``Prediction.flags``);
* a calibration ``whole = alpha * sum(parts) + beta`` from whole candidates timed in the fit
  (the glue between parts: residual additions, reshapes, Python overhead).

It is saved as JSON (``save`` / ``load``): data only, nothing that runs code on load. Fitting and
the timing it needs are in ``nas.measure.latency_fit``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

__all__ = ["FEATURES", "LatencyModel", "Part", "Prediction", "fit_groups", "model_parts"]

FEATURES = ("macs", "in_elems", "out_elems", "attn")
FORMAT = "nas-latency-model/2"  # /2: part signatures from nas.measure.latency_parts
_EXPAND = {"Sequential", "ModuleList", "ModuleDict", "Column", "Level", "PlainNet", "RevColNet"}


@dataclass(frozen=True)
class Part:
    """One part of a deploy model as it was called: configuration, inputs and features."""

    signature: str
    group: str
    name: str  # the module's class
    features: tuple[float, ...]  # FEATURES
    args: tuple = field(default=(), compare=False)  # ("t", shape, channels_last) | ("v", value)
    module: nn.Module | None = field(default=None, compare=False, repr=False)


def _digest(text: str, n: int = 16) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def _part_modules(module: nn.Module):
    for child in module.children():
        if type(child).__name__ in _EXPAND:
            yield from _part_modules(child)
        else:
            yield child


def _arg_spec(value: Any) -> tuple:
    if isinstance(value, torch.Tensor):
        last = value.dim() == 4 and value.is_contiguous(memory_format=torch.channels_last)
        return ("t", tuple(value.shape), bool(last and not value.is_contiguous()))
    return ("v", value)


def _elems(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (list, tuple)):
        return sum(_elems(v) for v in value)
    return 0


def _attn(args: tuple) -> float:
    """A dense token-mixing term: channels x tokens^2 of the first 4-D input (B, C, H, W)."""
    x = next((a for a in args if isinstance(a, torch.Tensor)), None)
    if x is None or x.dim() != 4:
        return 0.0
    b, c, h, w = x.shape
    return float(b * c * (h * w) ** 2)


def model_parts(model: nn.Module, x: torch.Tensor) -> list[Part]:
    """Run ``model`` (deploy form) once on ``x`` and return its parts in call order."""
    parts = list(_part_modules(model))
    stack: list[list[float]] = []
    found: list[Part] = []

    def pre(module, args):
        stack.append([0.0])

    def post(module, args, out):
        macs = stack.pop()[0]
        spec = tuple(_arg_spec(a) for a in args)
        text = repr(module)
        signature = _digest(f"{text}|{spec}")
        group = _digest(type(module).__name__ + re.sub(r"\d+(\.\d+)?(e-?\d+)?", "#", text), 12)
        feats = (macs, float(_elems(args)), float(_elems(out)), _attn(args))
        found.append(Part(signature, group, type(module).__name__, feats, spec, module))

    def leaf(module, args, out):
        if not stack or not isinstance(out, torch.Tensor):
            return
        if isinstance(module, nn.Conv2d):
            stack[-1][0] += module.weight.numel() * out.shape[0] * out.shape[-2] * out.shape[-1]
        elif isinstance(module, nn.Linear):
            stack[-1][0] += module.weight.numel() * out.numel() / out.shape[-1]

    # leaf hooks before the parts' own: a part that is itself a leaf (a stem Conv2d) counts its
    # multiply-adds before ``post`` closes its tally
    hooks = [m.register_forward_pre_hook(pre) for m in parts]
    hooks += [m.register_forward_hook(leaf) for m in model.modules() if not list(m.children())]
    hooks += [m.register_forward_hook(post) for m in parts]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return found


class Prediction(NamedTuple):
    ms: float | None  # None when a part's group was never fitted
    flags: list[str]  # parts outside the fitted range or of an unfitted group
    parts_ms: float | None  # the sum of the parts before calibration


@dataclass
class LatencyModel:
    """Lookup table + per-group regressions + calibration (see the module's docstring)."""

    table: dict[str, float]
    groups: dict[str, dict[str, Any]]  # group -> {name, coef, scale, lo, hi, n}
    alpha: float = 1.0
    beta: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)  # device, protocol, held-out quality

    # per part signature: (milliseconds or nan, flags); parts recur across candidates. Table
    # and groups are not changed once a model predicts.
    _memo: dict[str, tuple[float, tuple[str, ...]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def _part_ms(self, p: Part) -> tuple[float, tuple[str, ...]]:
        if p.signature in self.table:
            return self.table[p.signature], ()
        g = self.groups.get(p.group)
        if g is None:
            return math.nan, (f"{p.name}: a block setting never fitted (group {p.group})",)
        flags = tuple(
            f"{p.name}: {name} {v:.4g} outside the fitted [{lo:.4g}, {hi:.4g}]"
            for name, v, lo, hi in zip(FEATURES, p.features, g["lo"], g["hi"])
            if v < lo * (1 - 1e-9) or v > hi * (1 + 1e-9)
        )
        return _linear(g, p.features), flags

    def predict_parts(self, parts: Sequence[Part]) -> Prediction:
        total, flags, memo = 0.0, [], self._memo
        for p in parts:
            found = memo.get(p.signature)
            if found is None:
                found = memo[p.signature] = self._part_ms(p)
            total += found[0]
            flags += found[1]
        if math.isnan(total):
            return Prediction(None, flags, None)
        return Prediction(self.alpha * total + self.beta, flags, total)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "features": list(FEATURES),
            "table": self.table,
            "groups": self.groups,
            "alpha": self.alpha,
            "beta": self.beta,
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> None:
        text = json.dumps(self.to_json(), indent=1, sort_keys=True, allow_nan=False)
        Path(path).write_text(text)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "<model>") -> LatencyModel:
        from nas.errors import UserError

        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise UserError(f"{source}: format: expected {FORMAT!r}, got {found!r}")
        try:
            table = {str(k): float(v) for k, v in data["table"].items()}
            groups = {str(k): dict(v) for k, v in data["groups"].items()}
            for g in groups.values():
                if len(g["coef"]) != len(FEATURES) + 1 or len(g["lo"]) != len(FEATURES):
                    raise ValueError("coef/lo of the wrong length")
            return cls(table, groups, float(data["alpha"]), float(data["beta"]), dict(data["meta"]))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UserError(f"{source}: not a latency model ({type(e).__name__}: {e})") from None

    @classmethod
    def load(cls, path: str | Path) -> LatencyModel:
        from nas.errors import UserError

        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except OSError as e:
            raise UserError(f"{p}: cannot read ({e.strerror or e})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{p}: not JSON ({e})") from None
        return cls.from_json(data, source=str(p))


def _linear(g: Mapping[str, Any], features: Sequence[float]) -> float:
    coef = g["coef"]
    return float(coef[0] + sum(c * v / s for c, v, s in zip(coef[1:], features, g["scale"])))


def fit_groups(samples: Sequence[tuple[Part, float]]) -> dict[str, dict[str, Any]]:
    """Per group, least squares of milliseconds on ``[1, *features / scale]`` (minimum norm when
    the group has fewer distinct parts than coefficients) and the range of each feature."""
    by_group: dict[str, list[tuple[Part, float]]] = {}
    for part, ms in samples:
        by_group.setdefault(part.group, []).append((part, ms))
    out = {}
    for group, rows in by_group.items():
        feats = np.array([p.features for p, _ in rows], dtype=float)
        scale = np.where(feats.max(axis=0) > 0, feats.max(axis=0), 1.0)
        design = np.hstack([np.ones((len(rows), 1)), feats / scale])
        coef, *_ = np.linalg.lstsq(design, np.array([ms for _, ms in rows]), rcond=None)
        out[group] = {
            "name": rows[0][0].name,
            "coef": [float(c) for c in coef],
            "scale": [float(s) for s in scale],
            "lo": [float(v) for v in feats.min(axis=0)],
            "hi": [float(v) for v in feats.max(axis=0)],
            "n": len(rows),
        }
    return out
