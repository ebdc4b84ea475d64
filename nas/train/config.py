"""``DataConfig``: which data set, at what resolution, split how (checked by the ``data:`` rules
of ``nas.settings``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nas.errors import UserError
from nas.settings import DATA_RULES, PROCEDURAL, parse_fields, procedural_size_problem

__all__ = ["DataConfig"]


@dataclass(frozen=True)
class DataConfig:
    """Which data set, at what resolution, split how.

    ``flip`` (random horizontal flip) defaults to True except for digits, which are not
    flip-invariant. ``crop_pad`` (random crop with that much reflect padding) defaults to
    ``image_size // 8``: 4 at 32x32, the CIFAR convention (0 for the procedural sets, whose
    settings are ``pathfinder`` / ``samediff``: a mapping checked by their rule tables). ``workers`` only matters for
    ImageFolder (DataLoader processes).
    """

    dataset: str = "digits"
    image_size: int = 32
    path: str | None = None
    num_classes: int | None = None
    val_fraction: float = 0.2
    seed: int = 0
    limit: int | None = None
    flip: bool | None = None
    crop_pad: int | None = None
    workers: int = 4
    pathfinder: dict | None = None  # settings of the procedural sets (nas.settings' rule tables)
    samediff: dict | None = None

    def __post_init__(self) -> None:
        values = parse_fields(dataclasses.asdict(self), DATA_RULES, source="data")
        if values["flip"] is None:
            values["flip"] = values["dataset"] != "digits"
        procedural = values["dataset"] in PROCEDURAL
        for name in PROCEDURAL:
            if values[name] is not None and values["dataset"] != name:
                raise UserError(
                    f"data.{name}: settings for {name}, but data.dataset is {values['dataset']}"
                )
        problem = procedural_size_problem(values["dataset"], values["image_size"])
        if problem is not None:
            raise UserError(f"data.image_size: {problem}")
        if values["crop_pad"] is None:  # reflect padding would mirror a drawing's markers
            values["crop_pad"] = 0 if procedural else values["image_size"] // 8
        for key, value in values.items():
            object.__setattr__(self, key, value)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "data") -> DataConfig:
        return cls(**parse_fields(d, DATA_RULES, source=source))
