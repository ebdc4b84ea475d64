"""A tiny, safe expression language for derived values in design spaces.

``derive: "min(5, kernel - 2) if mixer != 'dynamic' else 0"`` — numbers, strings, booleans, names
of other dimensions, arithmetic, comparisons, ``and/or/not``, ``x if c else y``, ``in`` and the
functions below. Nothing else is evaluated (no attributes, no subscripts, no imports).

Limits, as in small safe evaluators, so that no expression can hang or exhaust memory: an
expression of at most ``MAX_SOURCE`` characters and ``MAX_DEPTH`` nesting levels, at most
``MAX_STEPS`` evaluation steps, no number beyond ``10**MAX_DIGITS`` in magnitude (checked before a
power is computed), no string or list longer than ``MAX_ELEMENTS`` (checked before a repetition
or concatenation is built). Each violation is an ``ExprError`` naming the limit.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ExprError", "Expr"]

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "int": int,
    "float": float,
    "round": round,
    "len": len,
    "sum": lambda xs: sum(_numbers(xs)),  # numbers only: a sum of lists could build any size
    "ceil": math.ceil,
    "floor": math.floor,
    "log2": math.log2,
}


def _numbers(xs: Any) -> list:
    if not isinstance(xs, (list, tuple)) or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs
    ):
        raise ExprError("sum() takes a list of numbers")
    return list(xs)


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_UNOPS = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}

MAX_SOURCE = 2_000  # characters
MAX_DEPTH = 50  # nesting levels of the syntax tree
MAX_STEPS = 10_000  # evaluated nodes per call
MAX_DIGITS = 100  # numbers stay within 10**100 in magnitude
MAX_ELEMENTS = 10**6  # characters of a string, items of a list


def _size(v: Any) -> int | None:
    return len(v) if isinstance(v, (str, list, tuple)) else None


def _magnitude_ok(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return True
    if isinstance(v, float):
        return not math.isfinite(v) or abs(v) <= 10.0**MAX_DIGITS
    return abs(v) <= 10**MAX_DIGITS


def _guard_binop(op: type, a: Any, b: Any) -> None:
    """Refuse, before computing it, a result that would be too large."""
    sa, sb = _size(a), _size(b)
    if op is ast.Mult and (sa is not None or sb is not None):
        n, size = (b, sa) if sa is not None else (a, sb)
        if isinstance(n, int) and size * max(n, 0) > MAX_ELEMENTS:
            raise ExprError(f"a string or list longer than {MAX_ELEMENTS:,} elements")
    if op is ast.Add and sa is not None and sb is not None and sa + sb > MAX_ELEMENTS:
        raise ExprError(f"a string or list longer than {MAX_ELEMENTS:,} elements")
    if op is ast.Pow and isinstance(a, (int, float)) and isinstance(b, (int, float)):
        base = abs(float(a)) if not isinstance(a, bool) else 1.0
        if base > 1 and b > 0 and b * math.log10(base) > MAX_DIGITS:
            raise ExprError(f"a power beyond 10**{MAX_DIGITS}")
        if 0 < base < 1 and b < 0 and -b * math.log10(base) < -MAX_DIGITS:
            raise ExprError(f"a power beyond 10**{MAX_DIGITS}")


class ExprError(ValueError):
    """An expression that cannot be parsed or evaluated."""


class Expr:
    """A parsed expression; ``names`` are the dimensions it reads."""

    def __init__(self, source: str):
        if not isinstance(source, str) or not source.strip():
            raise ExprError(f"expected a non-empty expression string, got {source!r}")
        if len(source) > MAX_SOURCE:
            raise ExprError(
                f"an expression of {len(source):,} characters; the limit is {MAX_SOURCE:,}"
            )
        self.source = source
        try:
            self._tree = ast.parse(source, mode="eval").body
        except SyntaxError as e:
            raise ExprError(f"invalid expression {source!r}: {e.msg}") from None
        except (RecursionError, MemoryError):
            raise ExprError(f"an expression nested deeper than {MAX_DEPTH} levels") from None
        if _depth(self._tree) > MAX_DEPTH:
            raise ExprError(f"an expression nested deeper than {MAX_DEPTH} levels")
        self.names: frozenset[str] = frozenset(self._collect(self._tree))

    def _collect(self, node: ast.AST):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = getattr(node.func, "id", ast.unparse(node.func))
                raise ExprError(
                    f"unknown function {name!r} in {self.source!r}; allowed: {sorted(FUNCTIONS)}"
                )
            if node.keywords:
                raise ExprError(f"keyword arguments are not allowed in {self.source!r}")
            for a in node.args:
                yield from self._collect(a)
        elif isinstance(node, ast.Name):
            if node.id not in ("True", "False", "None"):
                yield node.id
        elif isinstance(node, ast.Constant):
            return
        elif isinstance(
            node, (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.List, ast.Tuple)
        ):
            for child in ast.iter_child_nodes(node):
                if not isinstance(
                    child, (ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.expr_context)
                ):
                    yield from self._collect(child)
        else:
            raise ExprError(f"unsupported syntax {type(node).__name__} in {self.source!r}")

    def __call__(self, env: Mapping[str, Any]) -> Any:
        self._steps = 0
        try:
            value = self._eval(self._tree, env)
        except ExprError as e:
            raise ExprError(f"{self.source!r}: {e}") if self.source not in str(e) else e from None
        except Exception as e:  # arithmetic on the user's values: report, never crash
            raise ExprError(f"{self.source!r} failed: {type(e).__name__}: {e}") from None
        return value

    def _eval(self, node: ast.AST, env: Mapping[str, Any]) -> Any:
        self._steps += 1
        if self._steps > MAX_STEPS:
            raise ExprError(f"more than {MAX_STEPS:,} evaluation steps")
        value = self._eval_node(node, env)
        if not _magnitude_ok(value):
            raise ExprError(f"a number beyond 10**{MAX_DIGITS}")
        if (_size(value) or 0) > MAX_ELEMENTS:
            raise ExprError(f"a string or list longer than {MAX_ELEMENTS:,} elements")
        return value

    def _eval_node(self, node: ast.AST, env: Mapping[str, Any]) -> Any:
        ev = self._eval
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            if node.id not in env:
                raise ExprError(f"{self.source!r}: {node.id!r} has no value here")
            return env[node.id]
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left, env), ev(node.right, env)
            _guard_binop(type(node.op), left, right)
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp):
            return _UNOPS[type(node.op)](ev(node.operand, env))
        if isinstance(node, ast.BoolOp):
            values = (ev(v, env) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.Compare):
            left = ev(node.left, env)
            for op, right_node in zip(node.ops, node.comparators):
                right = ev(right_node, env)
                if not _CMPOPS[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            return ev(node.body, env) if ev(node.test, env) else ev(node.orelse, env)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e, env) for e in node.elts]
        if isinstance(node, ast.Call):
            return FUNCTIONS[node.func.id](*(ev(a, env) for a in node.args))
        raise ExprError(f"unsupported syntax {type(node).__name__} in {self.source!r}")


def _depth(node: ast.AST) -> int:
    """Nesting depth of a syntax tree (iterative: a deep tree cannot overflow the stack)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(current))
    return deepest
