"""Value checks of a Candidate's fields: each raises ``CandidateError`` naming the field, what was
found and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nas.errors import UserError, did_you_mean
from nas.vocab import STAGE_FIELDS

__all__ = [
    "CandidateError",
    "check_bool",
    "check_float",
    "check_int",
    "check_name",
    "is_finite",
    "split_params",
]


class CandidateError(UserError):
    """An invalid architecture: names the field, what was found and what is allowed."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


def is_finite(value: int | float) -> bool:
    """``math.isfinite`` that answers False (instead of raising) for an int too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_name(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise CandidateError(
            name, f"expected one of {list(allowed)}, got {value!r}{did_you_mean(value, allowed)}"
        )


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise CandidateError(name, f"expected true or false, got {value!r}")


def check_int(name: str, value: Any, *, lo: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not is_finite(value)  # int() of inf/nan raises OverflowError/ValueError
        or int(value) != value
    ):
        raise CandidateError(name, f"expected an integer >= {lo}, got {value!r}")
    if value < lo:
        raise CandidateError(name, f"expected an integer >= {lo}, got {value!r}")
    return int(value)


def check_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not is_finite(value):
        raise CandidateError(name, f"expected a finite number, got {value!r}")
    return float(value)


_SINGULAR = {v: k for k, v in STAGE_FIELDS.items()}


def split_params(params: Mapping[str, Any], data: dict[str, Any]) -> dict[str, dict[int, Any]]:
    """Sort flat params: plain fields go into ``data``; per-stage entries are returned by field
    as ``{stage index: value}`` (-1: tied over all stages, -2: a base width)."""
    names = set(data)
    per_stage: dict[str, dict[int, Any]] = {}
    for key, value in params.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "stage" and parts[2] in _SINGULAR and parts[1].isdigit():
            per_stage.setdefault(_SINGULAR[parts[2]], {})[int(parts[1])] = value
        elif len(parts) == 2 and parts[0] == "stage" and parts[1] in _SINGULAR:
            per_stage.setdefault(_SINGULAR[parts[1]], {})[-1] = value
        elif key == "width":
            per_stage.setdefault("widths", {})[-2] = value
        elif key in names:
            data[key] = list(value) if isinstance(value, (list, tuple)) else value
        else:
            allowed = sorted(names | {"width"} | {f"stage.<i>.{s}" for s in _SINGULAR})
            raise CandidateError(
                key, f"unknown parameter{did_you_mean(key, allowed)}; expected one of {allowed}"
            )
    return per_stage
