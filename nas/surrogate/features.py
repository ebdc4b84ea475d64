"""The surrogate's features: a candidate's flat params, encoded by a schema taken from the space,
plus its analytic costs (parameters and MACs, exact, from ``nas.measure.cost``).

* A dimension whose values are numbers or booleans has a column with its value.
* A choice of strings or lists, and a choice of more than two numbers, has one column per value:
  1 for the value taken (one-hot), so that a linear model or a GP can see that the middle one
  of three kernel sizes is the best.
* A conditional dimension (``when:``) also has an ``<name>:active`` column; inactive, its value
  columns are 0.
* ``params_m``, ``params_m_deploy``, ``macs_m`` and ``macs_m_deploy`` are computed for every
  candidate; they and their logarithms are features, and as targets they are computed, never
  modelled.

The schema is plain JSON (``surrogate/schema.json``), so a fitted surrogate encodes the points a
sampler proposes exactly as it encoded the survey's rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from nas.space.space import Space

__all__ = ["ANALYTIC", "analytic_costs", "encode", "feature_schema"]

# cost columns the analytic path gives exactly (nas.measure.cost.FAST_COLUMNS)
ANALYTIC = ("params_m", "params_m_deploy", "macs_m", "macs_m_deploy")


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _numeric(value: Any) -> bool:
    return isinstance(value, (bool, int, float))


def feature_schema(space: Space, params: Iterable[Mapping[str, Any]]) -> list[dict]:
    """One entry per feature column: ``{"name", "dim", "kind", "value"}`` with kind ``value``,
    ``onehot`` (``value`` = the JSON of the dimension's value), ``active`` or ``cost``. A derived
    dimension is numeric when every survey row's value is a number; its one-hot values are the
    ones the survey saw."""
    params = list(params)
    out: list[dict] = []
    for dim in space.dims:
        if dim.kind == "fixed":
            continue
        if dim.kind == "derive":
            seen = [p[dim.name] for p in params if p.get(dim.name) is not None]
            values = sorted({_key(v): v for v in seen}.values(), key=_key)
        elif dim.kind == "choice":
            values = list(dim.values)
        else:
            values = [0.0]  # int and float ranges are numeric
        if dim.when:
            out.append({"name": f"{dim.name}:active", "dim": dim.name, "kind": "active"})
        numeric = all(_numeric(v) for v in values)
        if numeric:
            out.append({"name": dim.name, "dim": dim.name, "kind": "value"})
        if not numeric or (dim.kind == "choice" and len(values) > 2):
            out += [
                {
                    "name": f"{dim.name}={_key(v)}",
                    "dim": dim.name,
                    "kind": "onehot",
                    "value": _key(v),
                }
                for v in values
            ]
    out += [{"name": col, "dim": None, "kind": "cost"} for col in ANALYTIC]
    out += [
        {"name": f"log({col})", "dim": None, "kind": "log_cost", "value": col} for col in ANALYTIC
    ]
    return out


def analytic_costs(space: Space, params: Mapping[str, Any]) -> dict[str, float] | None:
    """The exact parameter and MAC counts (millions) of the candidate that ``params`` builds; None
    when the params are no valid candidate (``CandidateError``)."""
    from nas.measure.cost import fast_values
    from nas.space.candidate import CandidateError

    try:
        candidate = space.to_sample(params).candidate
    except CandidateError:
        return None
    return fast_values(candidate, ANALYTIC)


def encode(
    schema: list[dict], params: Mapping[str, Any], costs: Mapping[str, float]
) -> list[float]:
    """The feature row of one candidate (``costs`` from :func:`analytic_costs`)."""
    row = []
    for f in schema:
        kind, value = f["kind"], params.get(f["dim"]) if f["dim"] else None
        if kind == "cost":
            row.append(float(costs[f["name"]]))
        elif kind == "log_cost":  # accuracy tends to grow with log-compute: linear for ridge, GP
            row.append(math.log(max(float(costs[f["value"]]), 1e-9)))
        elif kind == "active":
            row.append(float(value is not None))
        elif kind == "onehot":
            row.append(float(value is not None and _key(value) == f["value"]))
        else:
            row.append(float(value) if _numeric(value) else 0.0)
    return row
