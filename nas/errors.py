"""User-facing errors: one line naming the file, the key path, what was found and what is allowed."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = [
    "CampaignPaused",
    "SpaceError",
    "UserError",
    "blocking_file",
    "did_you_mean",
    "is_oom",
    "path_component",
]


class UserError(ValueError):
    """Bad external input (YAML, flags, paths, data). The CLI prints it as one line, exit code 2."""


class CampaignPaused(RuntimeError):
    """A campaign stopped cleanly before its end (no node of the cluster could run its trials):
    finished rows are kept and ``nas resume`` continues it. The CLI prints it, exit code 3."""

    exit_code = 3


class SpaceError(UserError):
    """An invalid design-space (or runner) file: ``<file>: <key path>: <message>``."""

    def __init__(self, source: str, key_path: str, message: str):
        self.source, self.key_path, self.message = source, key_path, message
        super().__init__(f"{source}: {key_path}: {message}")


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# what an allocation failure says: CUDA/MPS ("out of memory"), the CPU allocator ("can't allocate
# memory", a RuntimeError, not torch.OutOfMemoryError), the exception names in a traceback
_OOM_TEXT = (
    "out of memory",
    "can't allocate memory",
    "cannot allocate memory",
    "memoryerror",
    "outofmemoryerror",
)


def is_oom(text: str) -> bool:
    """Whether an error message (or traceback) says that an allocation failed."""
    low = text.lower()
    return any(t in low for t in _OOM_TEXT)


_COMPONENT = re.compile(r"[A-Za-z0-9_.-]+")


def blocking_file(path) -> object | None:
    """The file (not folder) that stops ``path`` from being created: its nearest existing
    ancestor when that is not a folder; None when the path can be created."""
    from pathlib import Path

    parent = Path(path).parent
    while not parent.exists():
        parent = parent.parent
    return None if parent.is_dir() else parent


def path_component(name: object, *, key: str) -> str:
    """``name`` if it is one safe path component (letters, digits, ``-``, ``_``, ``.``; not ``.``
    or ``..``), so that joining it to a folder can never leave that folder."""
    if not isinstance(name, str) or not _COMPONENT.fullmatch(name) or name in (".", ".."):
        raise UserError(
            f"{key}: expected one path component of letters, digits, '-', '_' and '.' "
            f"(not '.' or '..'), got {name!r}"
        )
    return name
