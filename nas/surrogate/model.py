"""A fitted surrogate: one scikit-learn model per measured target, the feature schema and the
held-out quality, as written to ``<campaign>/surrogate/``:

* ``model.json``: per target, how to fit its model again: the chosen model (its position in
  ``nas.surrogate.estimators.candidates``, name and settings), the seed and the training rows
  (features and target), with a SHA-256 of that content. Loading fits the models again (exactly
  the same fit: same rows, settings and seed), so nothing in the folder can run code when read;
  a ``model.pkl`` (a pickle, written by nas before issue 31) is refused, never unpickled;
* ``schema.json``: the feature columns (``nas.surrogate.features``), the targets, the analytic
  columns and the number of survey rows;
* ``quality.json``: per target, the chosen model and settings and the held-out Kendall tau,
  Spearman rho, RMSE and R^2 (``nas.surrogate.fit``);
* ``held_out.csv``: every survey row's held-out prediction per target.

``predict`` answers for any point a sampler proposes: the analytic costs exactly, every modelled
target from its model, or None for a point that is no valid candidate.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import UserError
from nas.space.space import Space
from nas.surrogate.features import ANALYTIC, analytic_costs, encode

__all__ = ["FOLDER", "Surrogate", "load_surrogate", "recipe", "replace_folder"]

FOLDER = "surrogate"
FORMAT = "nas-surrogate-refit/1"
MODEL_FILE, PICKLE_FILE = "model.json", "model.pkl"


@dataclass
class Surrogate:
    """Models by target, their feature schema and quality (see the module docstring)."""

    schema: list[dict]
    models: dict[str, Any]
    quality: dict[str, dict]
    rows: int = 0  # survey rows the models learned from
    recipes: dict[str, dict] = field(default_factory=dict)  # per target: ``recipe(...)``

    @property
    def targets(self) -> tuple[str, ...]:
        """Every column this surrogate answers: the modelled targets and the analytic costs."""
        return (*self.models, *ANALYTIC)

    def predict(self, space: Space, params: Iterable[Mapping[str, Any]]) -> list[dict | None]:
        """Per point: ``{column: value}`` for every target (None for an invalid candidate)."""
        import numpy as np

        points = list(params)
        costs = [analytic_costs(space, p) for p in points]
        valid = [i for i, c in enumerate(costs) if c is not None]
        out: list[dict | None] = [None] * len(points)
        if not valid:
            return out
        x = np.array([encode(self.schema, points[i], costs[i]) for i in valid])
        predicted = {t: m.predict(x) for t, m in self.models.items()}
        for j, i in enumerate(valid):
            out[i] = {**costs[i], **{t: float(v[j]) for t, v in predicted.items()}}
        return out

    def save(self, folder: Path) -> None:
        """Write model.json, schema.json and quality.json into ``folder`` (which exists)."""
        missing = [t for t in self.models if t not in self.recipes]
        if missing:
            raise ValueError(f"no recipe for {missing}: a surrogate is saved as its recipes")
        targets = {t: self.recipes[t] for t in self.models}
        model = {"format": FORMAT, "sha256": _digest(targets), "targets": targets}
        (folder / MODEL_FILE).write_text(json.dumps(model))
        schema = {
            "features": self.schema,
            "targets": list(self.models),
            "analytic": list(ANALYTIC),
            "rows": self.rows,
        }
        (folder / "schema.json").write_text(json.dumps(schema, indent=2))
        (folder / "quality.json").write_text(json.dumps(self.quality, indent=2))


def recipe(candidate: int, seed: int, x, y) -> dict:
    """How to fit one target's model again: ``candidates(seed)[candidate]`` on rows ``x``, ``y``."""
    from nas.surrogate.estimators import candidates

    name, settings, _ = candidates(seed)[candidate]
    return {
        "model": name,
        "settings": settings,
        "candidate": int(candidate),
        "seed": int(seed),
        "x": [[float(v) for v in row] for row in x],
        "y": [float(v) for v in y],
    }


def _digest(targets: dict) -> str:
    return hashlib.sha256(json.dumps(targets, sort_keys=True).encode()).hexdigest()


def load_surrogate(campaign: str | Path) -> Surrogate:
    """The surrogate fitted for a campaign (``<campaign>/surrogate/``), its models fitted again
    from ``model.json``; a clear error when there is none, when it is a pickle (never read) or
    when ``model.json`` is not what ``nas surrogate fit`` wrote."""
    folder = Path(campaign) / FOLDER
    if (folder / PICKLE_FILE).exists():
        raise UserError(
            f"{folder / PICKLE_FILE}: a pickled surrogate is never loaded (a pickle can run code "
            f"when read); delete it and fit again: nas surrogate fit {campaign}"
        )
    files = [folder / n for n in (MODEL_FILE, "schema.json", "quality.json")]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(
            f"{missing[0]}: missing; fit the surrogate first: nas surrogate fit {campaign}"
        )
    try:
        model, schema, quality = (json.loads(f.read_text()) for f in files)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{folder}: cannot read the surrogate ({type(e).__name__}: {e})") from None
    features = schema.get("features") if isinstance(schema, dict) else None
    if not isinstance(features, list):
        raise UserError(
            f"{files[1]}: features: expected the list of feature columns nas surrogate fit "
            f"writes; fit it again: nas surrogate fit {campaign}"
        )
    width = len(features)
    recipes = _check_model(files[0], model, width, campaign)
    models = {t: _refit(r) for t, r in recipes.items()}
    return Surrogate(schema["features"], models, quality, schema.get("rows", 0), recipes)


def _check_model(path: Path, model: Any, width: int, campaign) -> dict[str, dict]:
    """The recipes of a ``model.json``, or one line saying what is wrong with it."""
    from nas.surrogate.estimators import candidates

    refit = f"fit it again: nas surrogate fit {campaign}"
    if not isinstance(model, dict) or model.get("format") != FORMAT:
        found = model.get("format") if isinstance(model, dict) else type(model).__name__
        raise UserError(f"{path}: format: expected {FORMAT!r}, got {found!r}; {refit}")
    targets = model.get("targets")
    if not isinstance(targets, dict) or model.get("sha256") != _digest(targets):
        raise UserError(f"{path}: its SHA-256 does not match its content (edited?); {refit}")
    for t, r in targets.items():
        ok = isinstance(r, dict) and isinstance(r.get("candidate"), int)
        ok = ok and isinstance(r.get("seed"), int) and 0 <= r["seed"] < 2**32  # numpy's seeds
        ok = ok and 0 <= r["candidate"] < len(candidates(0))
        ok = ok and candidates(r["seed"])[r["candidate"]][0] == r.get("model")
        ok = ok and _matrix(r.get("x"), width) and _vector(r.get("y"), len(r["x"]))
        if not ok:
            raise UserError(f"{path}: targets.{t}: not a recipe nas surrogate fit writes; {refit}")
    return targets


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def _matrix(x: Any, width: int) -> bool:
    return isinstance(x, list) and len(x) >= 2 and all(_numbers(r) and len(r) == width for r in x)


def _vector(y: Any, n: int) -> bool:
    return _numbers(y) and len(y) == n


def _refit(r: dict):
    """The model ``nas surrogate fit`` chose, fitted again on its rows (deterministic: seeded)."""
    import numpy as np

    from nas.surrogate.estimators import candidates, fit_estimator

    factory = candidates(r["seed"])[r["candidate"]][2]
    return fit_estimator(factory, np.array(r["x"], dtype=float), np.array(r["y"], dtype=float))


def replace_folder(dest: Path, fill) -> None:
    """Write a result folder whole or not at all: ``fill(tmp)`` writes into a temporary folder
    beside ``dest``, which then replaces ``dest`` (an earlier one is removed only then)."""
    import os
    import shutil

    tmp, old = dest.with_name(f".{dest.name}.tmp"), dest.with_name(f".{dest.name}.old")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        fill(tmp)
        if dest.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{dest}: cannot write ({e.strerror or e})") from None
