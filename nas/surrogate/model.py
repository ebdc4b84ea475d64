"""A fitted surrogate: one scikit-learn model per measured target, the feature schema and the
held-out quality, as written to ``<campaign>/surrogate/``:

* ``model.pkl``: ``{target: fitted estimator}`` (pickle; read it only from your own campaigns);
* ``schema.json``: the feature columns (``nas.surrogate.features``), the targets, the analytic
  columns and the number of survey rows;
* ``quality.json``: per target, the chosen model and settings and the held-out Kendall tau,
  Spearman rho, RMSE and R^2 (``nas.surrogate.fit``);
* ``held_out.csv``: every survey row's held-out prediction per target.

``predict`` answers for any point a sampler proposes: the analytic costs exactly, every modelled
target from its model, or None for a point that is no valid candidate.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import UserError
from nas.space.space import Space
from nas.surrogate.features import ANALYTIC, analytic_costs, encode

__all__ = ["FOLDER", "Surrogate", "load_surrogate", "replace_folder"]

FOLDER = "surrogate"


@dataclass
class Surrogate:
    """Models by target, their feature schema and quality (see the module docstring)."""

    schema: list[dict]
    models: dict[str, Any]
    quality: dict[str, dict]
    rows: int = 0  # survey rows the models learned from

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
        """Write model.pkl, schema.json and quality.json into ``folder`` (which exists)."""
        (folder / "model.pkl").write_bytes(pickle.dumps(self.models))
        schema = {
            "features": self.schema,
            "targets": list(self.models),
            "analytic": list(ANALYTIC),
            "rows": self.rows,
        }
        (folder / "schema.json").write_text(json.dumps(schema, indent=2))
        (folder / "quality.json").write_text(json.dumps(self.quality, indent=2))


def load_surrogate(campaign: str | Path) -> Surrogate:
    """The surrogate fitted for a campaign (``<campaign>/surrogate/``); a clear error when there
    is none."""
    folder = Path(campaign) / FOLDER
    files = [folder / n for n in ("model.pkl", "schema.json", "quality.json")]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(
            f"{missing[0]}: missing; fit the surrogate first: nas surrogate fit {campaign}"
        )
    try:
        schema = json.loads(files[1].read_text())
        quality = json.loads(files[2].read_text())
        models = pickle.loads(files[0].read_bytes())  # noqa: S301 - the user's own campaign
    except (json.JSONDecodeError, pickle.UnpicklingError, EOFError, AttributeError) as e:
        raise UserError(f"{folder}: cannot read the surrogate ({type(e).__name__}: {e})") from None
    return Surrogate(schema["features"], models, quality, schema.get("rows", 0))


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
