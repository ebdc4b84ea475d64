"""What every command's flags share: the help epilog and the argparse value types."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.errors import UserError, blocking_file

EPILOG = (
    "Docs: docs/ (mkdocs serve; the YAML and CLI references are generated there). "
    "Bad input exits with code 2 and one line."
)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def output_file(path: str | Path, flag: str = "--out") -> Path:
    """An output file path, checked before any work: not a folder, and its nearest existing
    parent a folder (the missing ones are created when it is written)."""
    out = Path(path)
    if out.is_dir():
        raise UserError(f"{flag}: {out} is a folder; expected a file path")
    blocker = blocking_file(out)
    if blocker is not None:
        raise UserError(f"{flag}: cannot write {out}: {blocker} is a file, not a folder")
    return out
