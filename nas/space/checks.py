"""Value checks of a Candidate's fields: each raises ``CandidateError`` naming the field, what was
found and what is allowed."""

from __future__ import annotations

import math
from typing import Any

from nas.errors import UserError, did_you_mean

__all__ = ["CandidateError", "check_bool", "check_float", "check_int", "check_name", "is_finite"]


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
