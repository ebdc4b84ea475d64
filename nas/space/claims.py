"""The ``claims:`` block of a space: a paper's claim as the ablation effect that would confirm it.

```yaml
claims:
  seeds: 3                      # seeds per ablation point (>= 2: an interval needs two)
  factorial: false              # true: the full factorial over the axes (a claim may use given:)
  effects:
    - name: large-kernels       # letters, digits, - and _
      says: "RepLKNet: ..."     # optional: the claim in words
      axis: stage.kernel        # a finite dimension of the space
      treatment: 13             # the value whose effect is claimed ...
      control: 3                # ... against this one
      given: {pretrain.method: fcmae}   # optional (factorial only): the other axes held here
      metric: val_acc           # a measured column
      expect: ">0"              # treatment - control > 0; or "<0"; or a margin: "> -0.02"
```

A claim may instead compare two factorial cells: no ``axis``, and ``treatment`` / ``control``
mappings ``{axis: value}`` over the same axes (e.g. RevCol's columns at equal parameters:
``{columns: 4, width: 16}`` against ``{columns: 1, width: 32}``). The axes a claim set varies are
those its effects name, in order of first mention. Checked here, with one line per error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nas.errors import did_you_mean
from nas.space.dimparse import in_grid
from nas.vocab import COLUMNS, ERF_COLUMNS, FEATDIV_COLUMNS, PROXIES

__all__ = ["CLAIM_KEYS", "CLAIMS_KEYS", "CLAIM_METRICS", "Claim", "ClaimSet", "parse_claims"]

CLAIMS_KEYS = ("seeds", "factorial", "effects")
CLAIM_KEYS = ("name", "says", "axis", "treatment", "control", "given", "metric", "expect")
CLAIM_METRICS = (*COLUMNS, "val_acc_best", *ERF_COLUMNS, *FEATDIV_COLUMNS, *PROXIES)
_EXPECT = re.compile(r"^\s*([<>])\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Claim:
    """One claim: ``metric(treatment) - metric(control)`` is expected ``direction`` ``margin``."""

    name: str
    treatment: dict  # {axis: value}: the ablation point (a factorial cell) of the treatment
    control: dict
    metric: str
    direction: str  # ">" or "<"
    margin: float = 0.0
    says: str = ""

    @property
    def expect(self) -> str:
        return f"{self.direction} {self.margin:g}"


@dataclass(frozen=True)
class ClaimSet:
    seeds: int
    factorial: bool
    effects: tuple[Claim, ...]

    @property
    def axes(self) -> list[str]:
        """The axes the claims vary, in order of first mention."""
        out: dict[str, None] = {}
        for c in self.effects:
            out |= dict.fromkeys([*c.treatment, *c.control])
        return list(out)


def parse_claims(
    err: Callable[[str, str], Any], value: Any, grids: Mapping[str, Any]
) -> ClaimSet | None:
    """The ``claims:`` block (None when absent); ``grids``: each finite axis of the space and its
    values (``stage.kernel`` for the per-stage kernels). ``err(key_path, message)`` raises."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        err("claims", f"expected a mapping with keys {list(CLAIMS_KEYS)}, got {value!r}")
    for key in value:
        if key not in CLAIMS_KEYS:
            err(f"claims.{key}", f"unknown key{did_you_mean(key, CLAIMS_KEYS)}; allowed: "
                f"{list(CLAIMS_KEYS)}")  # fmt: skip
    seeds = value.get("seeds", 3)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        err(
            "claims.seeds", f"expected an integer >= 2 (an interval needs two seeds), got {seeds!r}"
        )
    factorial = value.get("factorial", False)
    if not isinstance(factorial, bool):
        err("claims.factorial", f"expected true or false, got {factorial!r}")
    raw = value.get("effects")
    if not isinstance(raw, list) or not raw:
        err("claims.effects", f"expected a non-empty list of claims, got {raw!r}")
    effects = tuple(_claim(err, f"claims.effects[{i}]", c, grids, factorial)
                    for i, c in enumerate(raw))  # fmt: skip
    names = [c.name for c in effects]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        err("claims.effects", f"claim name {dup!r} appears twice; names must be unique")
    claims = ClaimSet(seeds=seeds, factorial=factorial, effects=effects)
    if not factorial and len(claims.axes) > 1 and any(len(c.treatment) > 1 for c in effects):
        err("claims.factorial", "a claim over several axes needs factorial: true")
    return claims


def _claim(err, path: str, raw: Any, grids: Mapping[str, Any], factorial: bool) -> Claim:
    if not isinstance(raw, Mapping):
        err(path, f"expected a mapping with keys {list(CLAIM_KEYS)}, got {raw!r}")
    for key in raw:
        if key not in CLAIM_KEYS:
            err(f"{path}.{key}", f"unknown key{did_you_mean(key, CLAIM_KEYS)}; allowed: "
                f"{list(CLAIM_KEYS)}")  # fmt: skip
    for key in ("name", "treatment", "control", "metric", "expect"):
        if key not in raw:
            err(f"{path}.{key}", "missing (required: name, treatment, control, metric, expect)")
    name = raw["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        err(f"{path}.name", f"expected a name of letters, digits, - and _, got {name!r}")
    treatment, control = _points(err, path, raw, grids, factorial)
    metric = raw["metric"]
    if metric not in CLAIM_METRICS:
        err(f"{path}.metric", f"unknown metric {metric!r}{did_you_mean(metric, CLAIM_METRICS)}; "
            f"allowed: {list(CLAIM_METRICS)}")  # fmt: skip
    m = _EXPECT.match(str(raw["expect"])) if isinstance(raw["expect"], str) else None
    if m is None:
        err(f"{path}.expect", f"expected '>0', '<0' or a margin such as '> -0.02', "
            f"got {raw['expect']!r}")  # fmt: skip
    says = raw.get("says", "")
    if not isinstance(says, str):
        err(f"{path}.says", f"expected a string, got {says!r}")
    return Claim(name, treatment, control, metric, m.group(1), float(m.group(2)), says)


def _points(err, path: str, raw: Mapping, grids: Mapping[str, Any], factorial: bool):
    """(treatment, control) as ``{axis: value}`` points, each value checked against its axis."""
    if "axis" in raw:
        axis = raw["axis"]
        if not isinstance(axis, str) or axis not in grids:
            err(f"{path}.axis", f"{axis!r} is not a finite dimension of the space"
                f"{did_you_mean(axis, grids)}; allowed: {sorted(grids)}")  # fmt: skip
        given = raw.get("given") or {}
        if not isinstance(given, Mapping):
            err(f"{path}.given", f"expected a mapping {{axis: value}}, got {given!r}")
        if given and not factorial:
            err(f"{path}.given", "needs claims.factorial: true (the other axes vary only there)")
        points = ({axis: raw["treatment"], **given}, {axis: raw["control"], **given})
    else:
        if "given" in raw:
            err(f"{path}.given", "only with axis: (a cell-to-cell claim names every axis)")
        points = (raw["treatment"], raw["control"])
        for key, p in zip(("treatment", "control"), points):
            if not isinstance(p, Mapping) or not p:
                err(f"{path}.{key}", f"without axis: expected a mapping {{axis: value}}, got {p!r}")
        if set(points[0]) != set(points[1]):
            err(f"{path}.control", f"expected the treatment's axes {sorted(points[0])}, "
                f"got {sorted(points[1])}")  # fmt: skip
    for key, point in zip(("treatment", "control"), points):
        for axis, v in point.items():
            if axis == raw.get("axis"):
                where = f"{path}.{key}"
            else:  # a given: axis, or one axis of a cell
                where = f"{path}.given.{axis}" if "axis" in raw else f"{path}.{key}.{axis}"
            if axis not in grids:
                err(where, f"{axis!r} is not a finite dimension of the space; allowed: "
                    f"{sorted(grids)}")  # fmt: skip
            if not in_grid(v, grids[axis]):
                err(where, f"{v!r} is not a value of {axis}; allowed: {_values(grids[axis])}")
    if points[0] == points[1]:
        err(f"{path}.control", "equals the treatment: there is no effect to measure")
    return dict(points[0]), dict(points[1])


def _values(grid) -> str:
    if isinstance(grid, range):
        return f"integers {grid.start}..{grid.stop - 1}" + (
            f" in steps of {grid.step}" if grid.step != 1 else ""
        )
    return str(list(grid))
