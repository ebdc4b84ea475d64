"""A finished survey as the surrogate's training set: the campaign folder checked (a survey, its
space, its sampled parameters), the space it ran (``space.yaml``, the campaign's copy) and the
flat parameters of every trained row, decoded back to the values the space suggests."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.campaign.table import campaign_space
from nas.errors import UserError
from nas.space.space import Space

__all__ = ["Survey", "load_survey", "row_params"]


@dataclass
class Survey:
    """A survey campaign: its folder, manifest, space, table and the trained (``ok``) rows."""

    folder: Path
    manifest: dict
    space: Space
    table: Any  # DataFrame, every row
    ok: Any  # DataFrame, the rows with status ok
    params: list[dict]  # flat params of each ok row (same order)

    @property
    def objectives(self) -> dict[str, str]:
        return dict(self.space.objectives)

    @property
    def constraints(self) -> dict[str, tuple]:
        return {k: tuple(v) for k, v in self.space.constraints.items()}


def load_survey(folder: str | Path) -> Survey:
    """The survey campaign in ``folder``; one clear error for anything else (not a campaign, a
    search or an ablation, no space copy, rows without their sampled parameters)."""
    from nas.campaign.table import load_campaign

    path, df = load_campaign(folder)
    manifest_path = path / "campaign.json"
    if not manifest_path.is_file():
        raise UserError(f"{path}: no campaign.json; expected a campaign written by nas survey")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{manifest_path}: not valid JSON ({e})") from None
    mode = manifest.get("mode")
    if mode != "survey":
        raise UserError(
            f"{manifest_path}: mode is {mode!r}, expected 'survey': the surrogate learns from the "
            "random sample of nas survey (a search or an ablation samples the space unevenly)"
        )
    space = campaign_space(path)
    ok = df[df["status"] == "ok"].reset_index(drop=True) if len(df) else df
    missing = [d.name for d in space.dims if d.kind != "fixed" and f"param.{d.name}" not in df]
    if len(ok) and missing:
        raise UserError(
            f"{path / 'trials.parquet'}: no column param.{missing[0]}: the rows lack the sampled "
            f"parameters of {path / 'space.yaml'} (a survey of another space?)"
        )
    params = [row_params(row, space) for row in ok.to_dict("records")]
    return Survey(path, manifest, space, df, ok, params)


def _cell(value: Any) -> Any:
    """A table cell as a plain value: None for a missing one (NaN, NA)."""
    from nas.campaign.table import plain

    return plain(value)


def _match(dim, value: Any) -> Any:
    """A stored cell as the value the dimension suggests (lists stored as JSON, ints as floats
    when a column has gaps); the cell itself when no choice matches."""
    if isinstance(value, str) and value[:1] in "[{":
        value = json.loads(value)
    if dim.kind == "choice":
        for choice in dim.values:
            if _same(choice, value):
                return choice
    if dim.kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b)
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def row_params(row: dict, space: Space) -> dict[str, Any]:
    """The flat params of a survey row (``param.<name>`` cells), in the space's order; an inactive
    dimension (its ``when:`` not met) is absent, as in ``Space.suggest``."""
    out = {}
    for dim in space.dims:
        value = _cell(row.get(f"param.{dim.name}"))
        if value is not None:
            out[dim.name] = _match(dim, value)
    return out
