"""The ``nas`` command line. Thin: parsing, printing and exit codes; the logic lives in ``nas``.

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 1 an unexpected failure.
"""

from __future__ import annotations

import logging
import sys

from nas.cli.parser import build_parser
from nas.device import tune_host_allocator
from nas.errors import CampaignPaused, UserError

__all__ = ["main"]


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a line is logged, not to the stream
    it was made with: ``main`` called twice in one process (tests, notebooks) with stderr
    swapped in between would otherwise write to a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _progress_to_stderr() -> None:
    """Campaign progress (the ``nas.progress`` logger) goes to stderr, one line per event."""
    log = logging.getLogger("nas.progress")
    if not log.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


# Flags whose value is an expression that may start with a minus (``--by -macs_m``): argparse
# would read the value as an option.
EXPRESSION_FLAGS = ("--by",)


def _join_expressions(argv: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(argv):
        if argv[i] in EXPRESSION_FLAGS and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_expressions(list(sys.argv[1:] if argv is None else argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _progress_to_stderr()
    tune_host_allocator()
    try:
        return args.func(args) or 0
    except UserError as e:
        print(f"nas {args.command}: error: {e}", file=sys.stderr)
        return 2
    except CampaignPaused as e:
        print(f"nas {args.command}: stopped: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
