"""Device names: the one place that turns a user's ``cpu`` / ``cuda[:N]`` / ``mps`` / ``auto``
into a ``torch.device``, with one clear error when the device is not there."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from nas.errors import UserError

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICE_NAMES", "is_device_name", "resolve_device"]

DEVICE_NAMES = "'cpu', 'cuda', 'cuda:<n>', 'mps' or 'auto'"
_PATTERN = re.compile(r"cpu|auto|mps|cuda(:\d+)?")


def is_device_name(name: object) -> bool:
    """Whether ``name`` is a device name ``resolve_device`` accepts (present or not)."""
    return isinstance(name, str) and _PATTERN.fullmatch(name) is not None


def resolve_device(name: str, *, key: str = "--device") -> torch.device:
    """``torch.device`` for ``name`` (``auto``: CUDA when available, else CPU). ``key`` names the
    flag or YAML key the value came from, for the error message."""
    import torch

    if not is_device_name(name):
        raise UserError(f"{key}: expected {DEVICE_NAMES}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"{key} {name}: no CUDA device is available here (torch.cuda.is_available() is False)"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"{key} {name}: no MPS device is available here")
    return device
