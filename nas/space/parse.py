"""YAML mapping -> ``Space``: every check that can name a key path lives here.

Each error is one ``SpaceError(file, key_path, message)``; nothing here raises anything else for
bad input.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.documents import DocumentError, read_yaml
from nas.errors import SpaceError, did_you_mean
from nas.settings import (
    DATA_RULES,
    DATASETS,
    MEASURE_RULES,
    PRETRAIN_RULES,
    TRAIN_RULES,
    Rule,
    check_rule,
    procedural_size_problem,
)
from nas.space.candidate import Candidate, CandidateError, load_candidate
from nas.space.claims import parse_claims
from nas.space.dimparse import DimParser, SpaceErrors
from nas.space.dims import is_number
from nas.space.pretrain import check_mask
from nas.space.space import Space
from nas.vocab import COLUMNS, COST_COLUMNS, METRIC_COLUMNS, SAMPLERS

__all__ = ["load_space", "parse_space", "portable_space_text"]

TOP_KEYS = (
    "name",
    "description",
    "base",
    "stages",
    "data",
    "train",
    "pretrain",
    "measure",
    "objectives",
    "constraints",
    "sampler",
    "space",
    "claims",
)


def parse_space(data: Any, *, source: str = "<space>", root: Path | None = None) -> Space:
    err = SpaceErrors(source)
    _check_top(err, data)
    name = data.get("name") or (Path(source).stem if source != "<space>" else "space")
    if not isinstance(name, str):
        err("name", f"expected a string, got {name!r}")
    dataset = _section(err, "data", data.get("data"), DATA_RULES)
    problem = procedural_size_problem(dataset.get("dataset"), dataset.get("image_size", 32))
    if problem is not None:
        err("data.image_size", problem)
    if "dataset" in dataset and dataset["dataset"] not in DATASETS:
        err(
            "data.dataset",
            f"unknown data set {dataset['dataset']!r}{did_you_mean(dataset['dataset'], DATASETS)}; allowed: {list(DATASETS)}",
        )
    train = _section(err, "train", data.get("train"), TRAIN_RULES)
    pretrain = _section(err, "pretrain", data.get("pretrain"), PRETRAIN_RULES)
    measure = _section(err, "measure", data.get("measure"), MEASURE_RULES)
    base = _base(err, data.get("base"), dataset, root)
    stages = data.get("stages", base.num_stages)
    if not isinstance(stages, int) or isinstance(stages, bool) or stages < 1:
        err("stages", f"expected an integer >= 1, got {stages!r}")
    if stages != base.num_stages:  # the per-stage lists of the base fix the number of stages
        err(
            "stages",
            f"expected {base.num_stages} (the number of stages of the base candidate), got {stages}; "
            f"use a base with {stages} stages to change it",
        )
    objectives = _objectives(err, data.get("objectives"))
    constraints = _constraints(err, data.get("constraints"))
    _check_measure_only(err, train, pretrain, objectives)
    sampler = data.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        err(
            "sampler",
            f"unknown sampler {sampler!r}{did_you_mean(sampler, SAMPLERS)}; allowed: {list(SAMPLERS)}",
        )
    raw = data.get("space") or {}
    ordered = _dims(err, stages, raw)
    _check_pretrain(source, base, pretrain, ordered)
    claims = parse_claims(err, data.get("claims"), _grids(ordered))
    return Space(
        name=name,
        dims=ordered,
        base=base,
        stages=stages,
        data=dataset,
        train=train,
        pretrain=pretrain,
        measure=measure,
        objectives=objectives,
        constraints=constraints,
        sampler=sampler,
        description=str(data.get("description", "")),
        source=source,
        claims=claims,
    )


def _check_measure_only(err: SpaceErrors, train: dict, pretrain: dict, objectives: dict) -> None:
    """``train.epochs: 0`` measures the candidates without training them: nothing may need a
    trained network (an objective on accuracy or loss, pre-training)."""
    if train.get("epochs") != 0:
        return
    trained = [k for k in objectives if k in METRIC_COLUMNS]
    if trained:
        err(
            "objectives",
            f"{trained} need training, but train.epochs is 0 (measure only); use measured "
            f"columns ({list(COST_COLUMNS)}) or train.epochs >= 1",
        )
    if pretrain.get("method", "none") != "none":
        err("pretrain.method", "pre-training needs training, but train.epochs is 0 (measure only)")


def _check_top(err: SpaceErrors, data: Any) -> None:
    if data is None:  # an empty, comment-only or `null` file: a truncated or wrongly saved space
        err("<root>", f"empty document: expected a mapping with keys {list(TOP_KEYS)}")
    if not isinstance(data, Mapping):
        err("<root>", f"expected a mapping with keys {list(TOP_KEYS)}, got {type(data).__name__}")
    for key in data:
        if key not in TOP_KEYS:
            err(
                str(key),
                f"unknown top-level key{did_you_mean(key, TOP_KEYS)}; allowed: {list(TOP_KEYS)}",
            )


def _grids(dims) -> dict[str, Any]:
    """Each finite dimension an ablation can vary and its values (``stage.<i>.kernel`` as
    ``stage.kernel``), as ``nas.campaign.plan`` reads them."""
    out: dict[str, list] = {}
    for d in dims:
        grid = d.grid() if d.kind != "derive" and not d.name.startswith("vars.") else None
        parts = d.name.split(".")
        name = f"stage.{parts[2]}" if len(parts) == 3 and parts[0] == "stage" else d.name
        if grid is not None and name not in out:
            out[name] = grid  # a tuple, or a range (an int range may be huge)
    return out


def _dims(err: SpaceErrors, stages: int, raw: Any) -> tuple:
    if not isinstance(raw, Mapping):
        err("space", f"expected a mapping of dimensions, got {type(raw).__name__}")
    dims = DimParser(err, stages)
    dims.parse(raw)
    return dims.ordered()


def _check_pretrain(source: str, base: Candidate, pretrain: dict, dims) -> None:
    """FCMAE settings the base candidate cannot keep the mask under are a SpaceError now (a
    sampled candidate that cannot is an invalid point, rejected like any other)."""
    varied = {d.name for d in dims}
    methods = {pretrain.get("method", "none")}
    for d in dims:
        if d.name == "pretrain.method":
            methods |= set(d.values or ())
    if "fcmae" in methods and not varied & {"pretrain.patch", "pretrain.mask_ratio"}:
        check_mask(base, pretrain, source=source)


def _section(err: SpaceErrors, name: str, value: Any, rules: dict[str, Rule]) -> dict:
    """A ``data:``, ``train:``, ``pretrain:`` or ``measure:`` section checked against the rules its consumer applies."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        err(name, f"expected a mapping with keys {list(rules)}, got {type(value).__name__}")
    for key, v in value.items():
        if key not in rules:
            err(f"{name}.{key}", f"unknown key{did_you_mean(key, rules)}; allowed: {list(rules)}")
        if name == "data" and key == "dataset" and isinstance(v, str) and v not in DATASETS:
            continue  # named with a suggestion by the caller
        problem = check_rule(rules[key], v)
        if problem is not None:
            err(f"{name}.{key}{problem[0]}", problem[1])
    return dict(value)


def _base(err: SpaceErrors, value: Any, dataset: dict, root: Path | None) -> Candidate:
    overrides = {"image_size": dataset.get("image_size"), "num_classes": dataset.get("num_classes")}
    if overrides["num_classes"] is None and dataset.get("dataset") in DATASETS:
        overrides["num_classes"] = DATASETS[dataset["dataset"]]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        if value is None:
            return Candidate.from_params(overrides)
        if isinstance(value, str):
            base = load_candidate(_base_path(value, root))
        elif isinstance(value, Mapping):
            base = Candidate.from_dict(value)
        else:
            err(
                "base",
                f"expected a candidate YAML path or a mapping of candidate fields, got {value!r}",
            )
        return Candidate.from_params(overrides, base=base)
    except CandidateError as e:
        err("base", str(e))


def _objectives(err: SpaceErrors, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not value:
        err("objectives", f"expected a non-empty mapping column: max|min, got {value!r}")
    for col, sense in value.items():
        if col not in COLUMNS:
            err(
                f"objectives.{col}",
                f"unknown column{did_you_mean(col, COLUMNS)}; allowed: {list(COLUMNS)}",
            )
        if sense not in ("max", "min"):
            err(f"objectives.{col}", f"expected 'max' or 'min', got {sense!r}")
    return dict(value)


def _constraints(err: SpaceErrors, value: Any) -> dict[str, tuple]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        err("constraints", f"expected a mapping column: [lo, hi], got {value!r}")
    out = {}
    for col, window in value.items():
        key = f"constraints.{col}"
        if col not in COST_COLUMNS:
            err(
                key,
                f"unknown cost column{did_you_mean(col, COST_COLUMNS)}; constraints are checked before training on: {list(COST_COLUMNS)}",
            )
        if (
            not isinstance(window, list)
            or len(window) != 2
            or not all(v is None or is_number(v) for v in window)
        ):
            err(key, f"expected [lo, hi] (numbers, or null for unbounded), got {window!r}")
        lo, hi = window
        if lo is not None and hi is not None and lo > hi:
            err(key, f"contradicting bounds: lo {lo} > hi {hi}; no candidate can satisfy it")
        if hi is not None and hi < 0:
            err(key, f"contradicting bounds: hi {hi} < 0, and {col} is never negative")
        out[col] = (lo, hi)
    return out


def load_space(path: str | Path) -> Space:
    """Read and validate a space YAML file. Raises SpaceError with file and key path."""
    p = Path(path)
    try:
        data = read_yaml(p)
    except DocumentError as e:
        raise SpaceError(str(p), e.where, e.message) from None
    return parse_space(data, source=str(p), root=p.parent)


def _base_path(value: str, root: Path | None) -> Path:
    """Where a ``base:`` path points: as given when it exists, else beside the space file."""
    path = Path(value)
    if not path.is_absolute() and root is not None and not path.exists():
        path = root / value
    return path


def portable_space_text(path: str | Path) -> str:
    """The space file's text with a ``base:`` path written out as the candidate it names: a copy
    anywhere else (a campaign folder, another machine) is the same space. The file must be a
    valid space (``load_space`` it first); its comments are not kept."""
    import yaml

    p = Path(path)
    data = read_yaml(p)
    base = data.get("base")
    if not isinstance(base, str):
        return p.read_text()
    fields = load_candidate(_base_path(base, p.parent)).to_dict()
    data = {k: (fields if k == "base" else v) for k, v in data.items()}
    header = f"# copy of {p.resolve()}; base: {base} written out, so this file stands alone\n"
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
