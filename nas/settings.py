"""The ``data:``, ``train:``, ``pretrain:`` and ``measure:`` sections: their keys and what each accepts, defined once.

A rule is ``(convert, allowed)``: ``convert`` returns the checked value or raises ``ValueError``;
``allowed`` says in words what is accepted. ``parse_fields`` applies a rule set to a mapping and
raises one clear ``UserError`` per bad key. The design-space parser (``nas.space.parse``), the
data sets (``nas.train.data.DataConfig``) and the trainer (``nas.train.trainer.TrainConfig``) all
read these rules, so a key accepted in a space is a key the trainer understands.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from nas.device import DEVICE_NAMES, is_device_name
from nas.errors import UserError, did_you_mean
from nas.vocab import PROXIES

__all__ = [
    "DATASETS",
    "DATA_RULES",
    "PATHFINDER_RULES",
    "PROCEDURAL",
    "SAMEDIFF_RULES",
    "FieldError",
    "MEASURE_DEFAULTS",
    "MEASURE_RULES",
    "PRETRAIN_METHODS",
    "PRETRAIN_RULES",
    "TRAIN_RULES",
    "Rule",
    "as_bool",
    "as_choice",
    "as_float",
    "as_int",
    "as_section",
    "check_rule",
    "optional",
    "parse_fields",
]

# data set -> its number of classes (None: read from the folder)
DATASETS: dict[str, int | None] = {
    "digits": 10,
    "cifar10": 10,
    "imagefolder": None,
    "synthetic": 10,
    "pathfinder": 2,
    "samediff": 2,
}
PROCEDURAL = ("pathfinder", "samediff")  # generated from a seed; settings under data.<name>
PROCEDURAL_SIZES = {"pathfinder": (32, 128), "samediff": (32, 128)}  # image sizes they draw


def procedural_size_problem(dataset: Any, image_size: Any) -> str | None:
    """What is wrong with ``data.image_size`` for a procedural data set, or None."""
    if dataset not in PROCEDURAL_SIZES or not isinstance(image_size, int):
        return None
    lo, hi = PROCEDURAL_SIZES[dataset]
    if lo <= image_size <= hi:
        return None
    return f"{dataset} draws images of {lo}..{hi} px, got {image_size}"


Rule = tuple[Callable[[Any], Any], str]  # (convert-or-raise, what is allowed)


def parse_fields(
    values: Mapping[str, Any], rules: Mapping[str, Rule], *, source: str
) -> dict[str, Any]:
    """Check a config mapping against ``rules``; return the converted values.

    Raises ``UserError`` with one line: ``<source>.<key>: expected <allowed>, got <found>``.
    Numeric strings are accepted for numbers (PyYAML reads ``2e-3`` as a string).
    """
    if not isinstance(values, Mapping):
        raise UserError(f"{source}: expected a mapping of settings, got {values!r}")
    out = {}
    for key, value in values.items():
        if key not in rules:
            raise UserError(
                f"{source}.{key}: unknown key{did_you_mean(key, rules)}; expected one of {sorted(rules)}"
            )
        problem = check_rule(rules[key], value)
        if problem is not None:
            raise UserError(f"{source}.{key}{problem[0]}: {problem[1]}")
        out[key] = rules[key][0](value)
    return out


class FieldError(ValueError):
    """A bad value inside a nested section (``data.pathfinder``): the inner ``key`` and what is wrong."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"{key}: {detail}")
        self.key, self.detail = key, detail


def check_rule(rule: Rule, value: Any) -> tuple[str, str] | None:
    """None if ``rule`` accepts ``value``; else (the inner key path, "" or ".k", and what is wrong)."""
    try:
        rule[0](value)
    except FieldError as e:
        return f".{e.key}", e.detail
    except (TypeError, ValueError):
        return "", f"expected {rule[1]}, got {value!r}"
    return None


def as_section(rules: Mapping[str, Rule]) -> Callable[[Any], dict[str, Any]]:
    """A nested mapping checked against its own rule table (a bad inner key is a ``FieldError``)."""

    def convert(v: Any) -> dict[str, Any]:
        if not isinstance(v, Mapping):
            raise ValueError
        out = {}
        for key, value in v.items():
            if key not in rules:
                hint = did_you_mean(key, rules)
                raise FieldError(str(key), f"unknown key{hint}; expected one of {sorted(rules)}")
            problem = check_rule(rules[key], value)
            if problem is not None:
                raise FieldError(f"{key}{problem[0]}", problem[1])
            out[key] = rules[key][0](value)
        return out

    return convert


def as_int(lo: int) -> Callable[[Any], int]:
    def convert(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v) or v < lo:
            raise ValueError
        return int(v)

    return convert


def as_float(lo: float, hi: float = math.inf, *, open_lo: bool = False) -> Callable[[Any], float]:
    def convert(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise ValueError
        x = float(v)
        if not math.isfinite(x) or x < lo or x > hi or (open_lo and x == lo):
            raise ValueError
        return x

    return convert


def as_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError
    return v


def as_choice(*choices: Any) -> Callable[[Any], Any]:
    def convert(v: Any) -> Any:
        if isinstance(v, bool) and True in choices:
            return v
        if isinstance(v, str) and v in choices:
            return v
        raise ValueError

    return convert


def optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else convert(v)


def _as_str(v: Any) -> str:
    if not isinstance(v, str | os.PathLike):
        raise ValueError
    return os.fspath(v)


def as_int_in(lo: int, hi: int) -> Callable[[Any], int]:
    def convert(v: Any) -> int:
        x = as_int(lo)(v)
        if x > hi:
            raise ValueError
        return x

    return convert


# ``data.pathfinder`` (nas.train.pathfinder): lengths in pixels at data.image_size (32..128)
PATHFINDER_RULES: dict[str, Rule] = {
    "num_images": (as_int(2), "an integer >= 2 (images generated, half of each class)"),
    "curve_length": (as_int_in(4, 1024), "an integer in 4..1024 (pixels of arc per curve)"),
    "distractors": (as_int_in(0, 16), "an integer in 0..16 (unmarked curves besides the two)"),
    "dash": (as_int_in(1, 64), "an integer in 1..64 (pixels of ink per dash)"),
    "gap": (as_int_in(0, 16), "an integer in 0..16 (pixels between dashes; 0 = solid)"),
    "turn": (as_float(0.0, 1.0), "a number in [0, 1] (largest heading change per pixel, radians)"),
    "marker_radius": (as_int_in(0, 4), "an integer in 0..4 (markers are squares of side 2r+1)"),
    "seed": (as_int(0), "an integer >= 0 (the images; data.seed fixes the split)"),
}
# ``data.samediff`` (nas.train.samediff): two glyphs far apart, same or different
SAMEDIFF_RULES: dict[str, Rule] = {
    "num_images": (as_int(2), "an integer >= 2 (images generated, half of each class)"),
    "glyph": (as_int_in(3, 8), "an integer in 3..8 (side of a glyph's cell in pixels)"),
    "density": (as_float(0.2, 0.8), "a number in [0.2, 0.8] (fraction of a glyph's pixels inked)"),
    "min_distance": (
        optional(as_float(0.0)),
        "a number of pixels >= 0 or null (image_size / 2): least distance between the glyphs",
    ),
    "seed": (as_int(0), "an integer >= 0 (the images; data.seed fixes the split)"),
}

DATA_RULES: dict[str, Rule] = {
    "dataset": (as_choice(*DATASETS), f"one of {list(DATASETS)}"),
    "image_size": (as_int(4), "an integer >= 4"),
    "path": (optional(_as_str), "a folder path or null"),
    "num_classes": (optional(as_int(2)), "an integer >= 2 or null (the data set's own)"),
    "val_fraction": (as_float(0.0, 1.0, open_lo=True), "a fraction in (0, 1)"),
    "seed": (as_int(0), "an integer >= 0"),
    "limit": (optional(as_int(2)), "an integer >= 2 or null (all images)"),
    "flip": (optional(as_bool), "true, false or null (true except for digits)"),
    "crop_pad": (optional(as_int(0)), "an integer >= 0 or null (image_size // 8)"),
    "workers": (as_int(0), "an integer >= 0"),
    "pathfinder": (
        optional(as_section(PATHFINDER_RULES)),
        f"a mapping with keys from {list(PATHFINDER_RULES)}, or null (defaults)",
    ),
    "samediff": (
        optional(as_section(SAMEDIFF_RULES)),
        f"a mapping with keys from {list(SAMEDIFF_RULES)}, or null (defaults)",
    ),
}


def _as_device(v: Any) -> str:
    if not is_device_name(v):
        raise ValueError
    return v


# ``epochs: 0`` measures the candidates only (costs, latency, proxies), no training: their rows
# have no accuracy, so no objective may need one (nas.space.parse)
TRAIN_RULES: dict[str, Rule] = {
    "epochs": (as_int(0), "an integer >= 0 (0: measure the candidates only, no training)"),
    "batch_size": (as_int(1), "an integer >= 1"),
    "lr": (as_float(0.0, open_lo=True), "a positive number"),
    "min_lr": (as_float(0.0), "a number >= 0"),
    "weight_decay": (as_float(0.0), "a number >= 0"),
    "warmup_epochs": (as_float(0.0), "a number of epochs >= 0"),
    "label_smoothing": (as_float(0.0, 0.99), "a number in [0, 0.99]"),
    "grad_clip": (as_float(0.0), "a max gradient norm >= 0 (0 = off)"),
    "seed": (as_int(0), "an integer >= 0"),
    "device": (_as_device, DEVICE_NAMES),
    "amp": (as_choice("auto", True, False), "'auto', true or false"),
    "channels_last": (as_choice("auto", True, False), "'auto', true or false"),
    "aux_weight": (as_float(0.0), "a number >= 0"),
}


PRETRAIN_METHODS = ("none", "fcmae")


def _as_open_fraction(v: Any) -> float:
    x = as_float(0.0, 1.0, open_lo=True)(v)
    if x == 1.0:
        raise ValueError
    return x


# ``pretrain:`` (nas.pretrain.loop.PretrainConfig): masked pre-training before the supervised run;
# batch size, device, seed and AMP are the ``train:`` section's.
PRETRAIN_RULES: dict[str, Rule] = {
    "method": (as_choice(*PRETRAIN_METHODS), f"one of {list(PRETRAIN_METHODS)}"),
    "epochs": (as_int(1), "an integer >= 1"),
    "mask_ratio": (_as_open_fraction, "a fraction in (0, 1)"),
    "patch": (optional(as_int(1)), "a patch size in pixels >= 1, or null (the network's stride)"),
    "decoder_dim": (as_int(1), "an integer >= 1"),
    "decoder_depth": (as_int(1), "an integer >= 1"),
    "norm_pix_loss": (as_bool, "true or false"),
    "lr": (as_float(0.0, open_lo=True), "a positive number"),
    "weight_decay": (as_float(0.0), "a number >= 0"),
}


def _as_proxies(v: Any) -> tuple[str, ...]:
    if v is None or v is False:
        return ()
    if v is True:
        return PROXIES
    if not isinstance(v, list | tuple) or not all(isinstance(p, str) and p in PROXIES for p in v):
        raise ValueError
    return tuple(dict.fromkeys(v))


# ``measure:`` (nas.campaign.analysis): what a trial measures beside costs and accuracy.
MEASURE_RULES: dict[str, Rule] = {
    "proxies": (
        _as_proxies,
        f"a list of zero-cost proxies from {list(PROXIES)}, true (all) or false/[] (none)",
    ),
    "proxy_batch": (as_int(2), "an integer >= 2 (images of the training split)"),
    "erf": (as_bool, "true or false (the ERF of the trained network)"),
    "erf_images": (as_int(1), "an integer >= 1 (images of the validation split)"),
    "feature_diversity": (
        as_bool,
        "true or false (per-stage channel cosine distance of the trained network)",
    ),
    "featdiv_images": (as_int(1), "an integer >= 1 (images of the validation split)"),
}
MEASURE_DEFAULTS: dict[str, Any] = {
    "proxies": PROXIES,
    "proxy_batch": 64,
    "erf": False,
    "erf_images": 16,
    "feature_diversity": False,
    "featdiv_images": 16,
}
