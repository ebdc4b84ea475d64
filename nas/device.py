"""Device names: the one place that turns a user's ``cpu`` / ``cuda[:N]`` / ``mps`` / ``auto``
into a ``torch.device``, with one clear error when the device is not there; and the host
allocator setting every process that trains or times a model applies (``tune_host_allocator``)."""

from __future__ import annotations

import ctypes
import os
import re
import sys
from typing import TYPE_CHECKING

from nas.errors import UserError

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICE_NAMES", "is_device_name", "resolve_device", "tune_host_allocator"]

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


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_ALLOCATOR_TUNED: list[bool] = []


def tune_host_allocator() -> bool:
    """Keep freed host memory in the process instead of returning it to the OS (glibc only).

    With glibc's defaults every freed block above an adaptive threshold (128 KiB, rising to at
    most 32 MiB) goes back to the OS, and the next activation tensor of that size page-faults on
    every 4 KiB page it touches. Measured here (``nas bench grn``, 2 cores): a ConvNeXt V2 block's
    training step spent about a fifth of its time in those faults, and GRN's throughput relative
    to the plain block moved from ~0.8 to ~0.93 with this setting. PyTorch's CPU performance guide
    recommends jemalloc or tcmalloc for the same reason; this is the same effect without a
    preloaded library. The cost: the process keeps its peak heap (RSS does not shrink after a
    peak). Applied by the CLI, campaign trials, the latency service and the benchmarks; a library
    user calls it once. ``NAS_GLIBC_MALLOC_DEFAULTS=1`` leaves glibc's defaults. Returns whether
    the setting is in effect."""
    if _ALLOCATOR_TUNED:
        return _ALLOCATOR_TUNED[0]
    ok = False
    if sys.platform.startswith("linux") and os.environ.get("NAS_GLIBC_MALLOC_DEFAULTS") != "1":
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):  # not glibc (musl has no libc.so.6 of this kind)
            mallopt = None
        if mallopt is not None:
            ok = mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1
            ok = ok and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    _ALLOCATOR_TUNED.append(ok)
    return ok
