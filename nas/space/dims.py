"""Dimensions of a design space: the value checks per architecture key, and ``Dim``, one
dimension that draws (numpy) or suggests (Optuna) a value."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.space.checks import is_finite
from nas.space.expr import Expr
from nas.vocab import BLOCKS, MACROS, MIXERS, NORMS, REVCOL_ALPHAS, STAGE_FIELDS

__all__ = ["CHECKS", "is_number", "FREE_KEYS", "STAGE_KEYS", "Dim", "decode", "encode", "grid_size"]


# ---------------------------------------------------------------------- value checks per arch key
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and is_finite(v)


CHECKS: dict[str, tuple[str, Any]] = {
    "kernel": ("odd integers >= 3", lambda v: _is_int(v) and v >= 3 and v % 2 == 1),
    "small_kernel": (
        "0 or odd integers >= 1",
        lambda v: _is_int(v) and (v == 0 or (v >= 1 and v % 2 == 1)),
    ),
    "depth": ("integers >= 1", lambda v: _is_int(v) and v >= 1),
    "width": ("integers >= 1", lambda v: _is_int(v) and v >= 1),
    "mlp_ratio": ("positive numbers", lambda v: is_number(v) and v > 0),
    "mixer": (f"one of {list(MIXERS)}", lambda v: isinstance(v, str) and v in MIXERS),
    "macro": (f"one of {list(MACROS)}", lambda v: isinstance(v, str) and v in MACROS),
    "block": (f"one of {list(BLOCKS)}", lambda v: isinstance(v, str) and v in BLOCKS),
    "stem": (f"one of {list(BLOCKS)}", lambda v: isinstance(v, str) and v in BLOCKS),
    "downsample": (f"one of {list(BLOCKS)}", lambda v: isinstance(v, str) and v in BLOCKS),
    "head": (f"one of {list(BLOCKS)}", lambda v: isinstance(v, str) and v in BLOCKS),
    "norm": (f"one of {list(NORMS)}", lambda v: isinstance(v, str) and v in NORMS),
    "columns": ("integers >= 1", lambda v: _is_int(v) and v >= 1),
    "reversible": ("true or false", lambda v: isinstance(v, bool)),
    "inter_supervision": ("true or false", lambda v: isinstance(v, bool)),
    "revcol_alpha": (
        f"one of {list(REVCOL_ALPHAS)}",
        lambda v: isinstance(v, str) and v in REVCOL_ALPHAS,
    ),
    "grn": ("true or false", lambda v: isinstance(v, bool)),
    "layer_scale": ("numbers >= 0", lambda v: is_number(v) and v >= 0),
    "head_dim": ("integers >= 1", lambda v: _is_int(v) and v >= 1),
    "dw_ratio": ("positive numbers", lambda v: is_number(v) and v > 0),
    "drop_path": ("numbers in [0, 1)", lambda v: is_number(v) and 0 <= v < 1),
    "num_classes": ("integers >= 1", lambda v: _is_int(v) and v >= 1),
    "image_size": ("integers >= 8", lambda v: _is_int(v) and v >= 8),
    "in_chans": ("integers >= 1", lambda v: _is_int(v) and v >= 1),
}
CHECKS["width_base"] = CHECKS["width"]
for _plural, _singular in STAGE_FIELDS.items():
    CHECKS[_plural] = CHECKS[_singular]
FREE_KEYS = set(CHECKS) - {"width_base"}  # accepted top-level dimension names
STAGE_KEYS = set(STAGE_FIELDS.values())


# ---------------------------------------------------------------------- dimensions
@dataclass(frozen=True)
class Dim:
    """One dimension. ``name`` is its flat param name (``macro``, ``stage.2.kernel``, ``train.lr``)."""

    name: str
    key_path: str
    kind: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    expr: Expr | None = None
    when: tuple[tuple[str, tuple], ...] = ()  # (flat name, allowed values)
    env: tuple[tuple[str, str], ...] = ()  # expression name -> flat name

    @property
    def depends_on(self) -> set[str]:
        return {n for n, _ in self.when} | {flat for _, flat in self.env}

    def active(self, values: Mapping[str, Any]) -> bool:
        return all(n in values and values[n] in allowed for n, allowed in self.when)

    def grid(self) -> tuple | None:
        """All values of a finite dimension (None for a float range or a derived value)."""
        if self.kind in ("choice", "fixed"):
            return self.values
        if self.kind == "int":  # a range, not a tuple: an int range may be huge
            return range(int(self.low), int(self.high) + 1, int(self.step or 1))
        return None

    def derive(self, values: Mapping[str, Any]) -> Any:
        env = {local: values[flat] for local, flat in self.env if flat in values}
        return self.expr(env)

    def draw(self, rng: np.random.Generator) -> Any:
        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "choice":
            return self.values[int(rng.integers(len(self.values)))]
        if self.kind == "int":
            if self.log:
                return int(round(math.exp(rng.uniform(math.log(self.low), math.log(self.high)))))
            n = int((self.high - self.low) // (self.step or 1)) + 1
            return int(self.low + (self.step or 1) * int(rng.integers(n)))
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def suggest(self, trial) -> Any:
        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "choice":
            encoded = [encode(v) for v in self.values]
            return decode(trial.suggest_categorical(self.name, encoded))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)


def grid_size(grid) -> int:
    """``len(grid)``, also for a range longer than ``sys.maxsize`` (where ``len`` overflows)."""
    if isinstance(grid, range):
        return max(0, (grid.stop - grid.start + grid.step - 1) // grid.step)
    return len(grid)


def encode(v: Any) -> Any:
    """Optuna categorical values must be scalars: lists/dicts travel as canonical JSON strings."""
    return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else v


def decode(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in "[{":
        return json.loads(v)
    return v
