"""What every command's flags share: the help epilog and the argparse value types."""

from __future__ import annotations

import argparse

EPILOG = (
    "Docs: README.md (YAML reference, CLI reference). Bad input exits with code 2 and one line."
)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
