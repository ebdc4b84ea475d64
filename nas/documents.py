"""Reading a YAML document (space, candidate, runner) with every failure as one clear error:
missing or unreadable file, text that is not UTF-8, YAML syntax (with its line and column), and
nesting deeper than any real document has (a parser or a checker would otherwise overflow the
stack). Each loader turns ``DocumentError`` into its own error type, naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.errors import UserError

__all__ = ["MAX_NESTING", "DocumentError", "read_yaml"]

MAX_NESTING = 40  # mappings/lists inside each other; the repository's documents use at most 4
MAX_BYTES = 256 << 10  # a space, candidate or runner file is a few KiB
MAX_VALUES = 100_000  # values with aliases expanded (a "billion laughs" document has 10**9)


class DocumentError(UserError):
    """``where`` (``<file>``, ``line L, column C``, ``<yaml>``) and ``message``."""

    def __init__(self, where: str, message: str):
        self.where, self.message = where, message
        super().__init__(f"{where}: {message}")


def read_yaml(path: str | Path) -> Any:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise DocumentError(
            "<file>", "cannot read (no such file)" if not p.exists() else "not a file"
        )
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise DocumentError("<file>", f"{size:,} bytes; a document is at most {MAX_BYTES:,}")
        text = p.read_bytes().decode("utf-8")
    except OSError as e:
        raise DocumentError("<file>", f"cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise DocumentError("<file>", f"not UTF-8 text (byte {e.start + 1}: {e.reason})") from None
    if _flow_depth(text) > MAX_NESTING:  # the YAML parser would recurse that deep, slowly
        raise DocumentError("<yaml>", f"nested deeper than {MAX_NESTING} levels")
    try:
        data = _load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "<yaml>"
        position = getattr(e, "position", None)  # yaml.reader.ReaderError has no mark
        if mark is None and isinstance(position, int):
            where = f"character {position + 1}"
        problem = getattr(e, "problem", None) or str(e).strip().split("\n")[0]
        raise DocumentError(where, "YAML syntax error: " + " ".join(str(problem).split())) from None
    except RecursionError:
        raise DocumentError("<yaml>", f"nested deeper than {MAX_NESTING} levels") from None
    _check_size(data)
    return data


def _check_size(node: Any) -> None:
    """Nesting depth and number of values of parsed YAML, aliases expanded (iterative: neither a
    deep nor an alias-bomb document can overflow the stack or run long)."""
    stack, seen = [(node, 1)], 0
    while stack:
        current, depth = stack.pop()
        seen += 1
        if depth > MAX_NESTING:
            raise DocumentError("<yaml>", f"nested deeper than {MAX_NESTING} levels")
        if seen > MAX_VALUES:
            raise DocumentError(
                "<yaml>", f"more than {MAX_VALUES:,} values (with anchors and aliases expanded)"
            )
        if isinstance(current, dict):
            stack.extend((v, depth + 1) for v in current.values())
        elif isinstance(current, list):
            stack.extend((v, depth + 1) for v in current)


def _load(text: str):
    """The pure-Python safe loader: its recursion stops at Python's limit with a RecursionError
    (libyaml's C composer could overflow the C stack on a deeply nested block document)."""
    import yaml

    return yaml.safe_load(text)


def _flow_depth(text: str) -> int:
    """Deepest nesting of ``[ ]`` / ``{ }`` outside quotes (a cheap scan before parsing)."""
    depth = deepest = 0
    quote = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
        elif ch == "\n":
            quote = None
    return deepest
