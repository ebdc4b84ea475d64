"""The ``space:`` section: each entry becomes one or more ``Dim`` (per stage, tied, conditional,
derived), checked against the value rules of its key and sorted in dependency order. Also the
error helper shared with ``nas.space.parse``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.errors import SpaceError, did_you_mean
from nas.settings import PRETRAIN_RULES, TRAIN_RULES, Rule
from nas.space.candidate import STAGE_FIELDS
from nas.space.dims import CHECKS, FREE_KEYS, STAGE_KEYS, Dim, grid_size, is_number
from nas.space.expr import Expr, ExprError

__all__ = ["DimParser", "SpaceErrors", "accepts", "in_grid"]

KINDS = ("choice", "int", "float", "derive", "fixed")
DIM_OPTIONS = ("when", "tie", "step", "log")
# sections whose settings can be dimensions: name -> (rules, what they are called in errors)
SETTINGS_DIMS: dict[str, tuple[dict[str, Rule], str]] = {
    "train": (TRAIN_RULES, "training"),
    "pretrain": (PRETRAIN_RULES, "pre-training"),
}


class SpaceErrors:
    def __init__(self, source: str):
        self.source = source

    def __call__(self, key_path: str, message: str):
        raise SpaceError(self.source, key_path, message)


def accepts(rule: Rule, value: Any) -> bool:
    try:
        rule[0](value)
    except (TypeError, ValueError):
        return False
    return True


def in_grid(v: Any, grid) -> bool:
    if isinstance(grid, range):  # `in` on a range iterates for non-int values: test the number
        return is_number(v) and float(v).is_integer() and int(v) in grid
    return v in grid


class DimParser:
    """Collects dimensions, resolves the names in ``when:``/``derive:``, orders them."""

    def __init__(self, err: SpaceErrors, stages: int):
        self.err, self.stages = err, stages
        self.specs: list[
            tuple[str, str, Any, int | None, str]
        ] = []  # name, key_path, spec, stage, check key

    def parse(self, raw: Mapping) -> None:
        for key, spec in raw.items():
            if key == "stage":
                self._stage(spec)
            elif key in SETTINGS_DIMS:
                self._settings(key, spec)
            elif key == "vars":
                if not isinstance(spec, Mapping):
                    self.err("space.vars", f"expected a mapping of helper variables, got {spec!r}")
                for vkey, vspec in spec.items():
                    if not str(vkey).isidentifier():
                        self.err(
                            f"space.vars.{vkey}",
                            "expected a Python-identifier name (it is used in expressions)",
                        )
                    self.specs.append((f"vars.{vkey}", f"space.vars.{vkey}", vspec, None, "vars"))
            elif key == "width":
                self.specs.append(("width", "space.width", spec, None, "width_base"))
            elif key in FREE_KEYS:
                self.specs.append((key, f"space.{key}", spec, None, key))
            else:
                allowed = sorted(FREE_KEYS | {"width", "stage", "vars", *SETTINGS_DIMS})
                self.err(
                    f"space.{key}",
                    f"unknown dimension{did_you_mean(key, allowed)}; allowed: {allowed}",
                )

    def _settings(self, section: str, spec: Any) -> None:
        """``space.train.*`` / ``space.pretrain.*``: dimensions over that section's settings."""
        rules, what = SETTINGS_DIMS[section]
        if not isinstance(spec, Mapping):
            self.err(f"space.{section}", f"expected a mapping of {what} settings, got {spec!r}")
        for key, value in spec.items():
            if key not in rules:
                self.err(
                    f"space.{section}.{key}",
                    f"unknown {what} setting{did_you_mean(key, rules)}; allowed: {list(rules)}",
                )
            name = f"{section}.{key}"
            self.specs.append((name, f"space.{name}", value, None, name))

    def _stage(self, raw: Any) -> None:
        if not isinstance(raw, Mapping):
            self.err("space.stage", f"expected a mapping of per-stage dimensions, got {raw!r}")
        for key, spec in raw.items():
            path = f"space.stage.{key}"
            if key not in STAGE_KEYS:
                self.err(
                    path,
                    f"unknown per-stage dimension{did_you_mean(key, STAGE_KEYS)}; allowed: {sorted(STAGE_KEYS)}",
                )
            if isinstance(spec, list):
                if len(spec) != self.stages:
                    self.err(
                        path,
                        f"expected a list of {self.stages} per-stage values (one per stage), got {len(spec)}: {spec!r}",
                    )
                for i, s in enumerate(spec):
                    self.specs.append((f"stage.{i}.{key}", f"{path}[{i}]", s, i, key))
            elif isinstance(spec, Mapping) and spec.get("tie", False):
                self.specs.append((f"stage.{key}", path, spec, -1, key))
            else:
                for i in range(self.stages):
                    self.specs.append((f"stage.{i}.{key}", path, spec, i, key))

    def ordered(self) -> tuple[Dim, ...]:
        self.names = {s[0] for s in self.specs}
        dims = {}
        for name, path, spec, stage, check in self.specs:
            dims[name] = self._dim(name, path, spec, stage, check)
        for d in dims.values():
            for ref, allowed in d.when:
                grid = dims[ref].grid()
                bad = [
                    v
                    for v in allowed
                    if grid is not None and dims[ref].kind != "derive" and not in_grid(v, grid)
                ]
                if bad:
                    shown = (
                        list(grid)
                        if grid_size(grid) <= 64
                        else f"integers in [{grid[0]}, {grid[-1]}] step {grid.step}"
                    )
                    self.err(
                        f"{d.key_path}.when.{ref}",
                        f"{bad[0]!r} is not a value of {ref}; allowed: {shown}",
                    )
        return self._toposort(dims)

    def _resolve(self, ref: str, stage: int | None, path: str) -> str:
        if stage is not None and stage >= 0 and f"stage.{stage}.{ref}" in self.names:
            return f"stage.{stage}.{ref}"
        if stage is not None and f"stage.{ref}" in self.names:
            return f"stage.{ref}"
        if ref in self.names:
            return ref
        if f"vars.{ref}" in self.names:
            return f"vars.{ref}"
        known = sorted(
            n.removeprefix("vars.")
            for n in self.names
            if not n.startswith("stage.") or n.count(".") == 1
        ) + sorted({n.split(".")[-1] for n in self.names if n.startswith("stage.")})
        self.err(
            path, f"refers to unknown dimension {ref!r}{did_you_mean(ref, known)}; known: {known}"
        )

    def _dim(self, name: str, path: str, spec: Any, stage: int | None, check: str) -> Dim:
        if not isinstance(spec, Mapping):
            self._check_values(path, check, [spec])
            return Dim(name, path, "fixed", values=(spec,))
        kinds = [k for k in spec if k in KINDS]
        for k in spec:
            if k not in KINDS and k not in DIM_OPTIONS:
                self.err(
                    f"{path}.{k}",
                    f"unknown option{did_you_mean(k, KINDS + DIM_OPTIONS)}; allowed: {list(KINDS + DIM_OPTIONS)}",
                )
        if len(kinds) != 1:
            self.err(path, f"expected exactly one of {list(KINDS)}, got {kinds or 'none'}")
        kind = kinds[0]
        when, env = self._when(spec.get("when"), stage, path)
        if "tie" in spec and not isinstance(spec["tie"], bool):
            self.err(f"{path}.tie", f"expected true or false, got {spec['tie']!r}")
        if "tie" in spec and stage is None:
            self.err(f"{path}.tie", "only per-stage dimensions (under space.stage) can be tied")
        value = spec[kind]
        if kind == "fixed":
            self._check_values(path, check, [value])
            return Dim(name, path, kind, values=(value,), when=when)
        if kind == "choice":
            if not isinstance(value, list) or not value:
                self.err(f"{path}.choice", f"expected a non-empty list of values, got {value!r}")
            self._check_values(path, check, value)
            return Dim(name, path, kind, values=tuple(value), when=when)
        if kind == "derive":
            try:
                expr = Expr(value)
            except ExprError as e:
                self.err(f"{path}.derive", str(e))
            env = env + tuple(
                (n, self._resolve(n, stage, f"{path}.derive")) for n in sorted(expr.names)
            )
            return Dim(name, path, kind, expr=expr, when=when, env=env)
        return self._range(name, path, kind, spec, check, when)

    def _range(self, name: str, path: str, kind: str, spec: Mapping, check: str, when) -> Dim:
        value, step, log = spec[kind], spec.get("step", 1), spec.get("log", False)
        typ = int if kind == "int" else (int, float)
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, typ) and is_number(v) for v in value)
        ):
            self.err(
                f"{path}.{kind}",
                f"expected [lo, hi] with {'integers' if kind == 'int' else 'numbers'}, got {value!r}",
            )
        lo, hi = value
        if lo > hi or (kind == "float" and lo == hi):
            self.err(f"{path}.{kind}", f"expected lo < hi, got [{lo}, {hi}]")
        if not isinstance(log, bool):
            self.err(f"{path}.log", f"expected true or false, got {log!r}")
        if log and lo <= 0:
            self.err(f"{path}.log", f"a log range needs lo > 0, got {lo}")
        if kind == "int":
            if max(abs(lo), abs(hi)) > 2**53:  # numpy draws int64, Optuna stores floats
                self.err(f"{path}.int", f"expected bounds within +-2**53, got [{lo}, {hi}]")
            if not isinstance(step, int) or isinstance(step, bool) or step < 1:
                self.err(f"{path}.step", f"expected an integer >= 1, got {step!r}")
            if log and step != 1:
                self.err(f"{path}.step", "a log range cannot have a step (Optuna's rule too)")
            grid = range(lo, hi + 1, step)  # a range: an int range may be huge
            self._check_values(path, check, list(grid) if (hi - lo) // step < 4096 else [lo, hi])
        else:
            if "step" in spec:
                self.err(f"{path}.step", "only int ranges take a step")
            self._check_values(path, check, [float(lo), float(hi)], is_float_range=True)
        return Dim(
            name,
            path,
            kind,
            low=lo,
            high=hi,
            step=step if kind == "int" else None,
            log=log,
            when=when,
        )

    def _when(self, raw: Any, stage: int | None, path: str):
        if raw is None:
            return (), ()
        if not isinstance(raw, Mapping) or not raw:
            self.err(f"{path}.when", f"expected a mapping dimension: value | [values], got {raw!r}")
        when = []
        for ref, allowed in raw.items():
            flat = self._resolve(str(ref), stage, f"{path}.when.{ref}")
            values = tuple(allowed) if isinstance(allowed, list) else (allowed,)
            if not values:
                self.err(f"{path}.when.{ref}", "expected at least one value")
            when.append((flat, values))
        return tuple(when), ()

    def _check_values(
        self, path: str, check: str, values: list, *, is_float_range: bool = False
    ) -> None:
        if check == "vars":
            return
        section, _, key = check.partition(".")
        if section in SETTINGS_DIMS and key:
            rule = SETTINGS_DIMS[section][0][key]
            bad = [v for v in values if not accepts(rule, v)]
            if bad:
                self.err(path, f"expected {rule[1]}, got {bad[0]!r}")
            return
        what, ok = CHECKS[check]
        if check in STAGE_FIELDS:  # a whole per-stage list, e.g. depths: [2, 2, 6, 2]
            for v in values:
                if not isinstance(v, list) or len(v) != self.stages or not all(ok(x) for x in v):
                    self.err(
                        path, f"expected a list of {self.stages} {what} (one per stage), got {v!r}"
                    )
            return
        if is_float_range and any(ok(v) for v in values) and not ok(0.5):
            self.err(path, f"expected {what}; a float range cannot give them")
        bad = [v for v in values if not ok(v)]
        if bad:
            shown = values if len(values) <= 8 else bad[0]
            self.err(path, f"expected {what}, got {shown!r}")

    def _toposort(self, dims: dict[str, Dim]) -> tuple[Dim, ...]:
        order, state = [], {}

        def visit(name: str, stack: list[str]):
            if state.get(name) == "done":
                return
            if state.get(name) == "open":
                cycle = stack[stack.index(name) :] + [name]
                self.err(dims[name].key_path, f"circular dependency: {' -> '.join(cycle)}")
            state[name] = "open"
            for dep in sorted(dims[name].depends_on):
                visit(dep, stack + [name])
            state[name] = "done"
            order.append(dims[name])

        for name in dims:
            visit(name, [])
        return tuple(order)
