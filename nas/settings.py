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
    "optional",
    "parse_fields",
]

# data set -> its number of classes (None: read from the folder)
DATASETS: dict[str, int | None] = {
    "digits": 10,
    "cifar10": 10,
    "imagefolder": None,
    "synthetic": 10,
}


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
        convert, allowed = rules[key]
        try:
            out[key] = convert(value)
        except (TypeError, ValueError):
            raise UserError(f"{source}.{key}: expected {allowed}, got {value!r}") from None
    return out


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
}


def _as_device(v: Any) -> str:
    if not is_device_name(v):
        raise ValueError
    return v


TRAIN_RULES: dict[str, Rule] = {
    "epochs": (as_int(1), "an integer >= 1"),
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
