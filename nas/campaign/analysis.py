"""What a trial measures beside cost and accuracy: the space's ``measure:`` section.

* Zero-cost proxies (``nas.measure.proxies``) at initialisation, on one seeded batch of the
  training split, before anything trains: the same values in a trial, in a funnel's pre-screen
  and in ``nas measure --proxies`` for the same candidate, seed and data. The global RNG is
  forked around them, so a trial trains exactly as it would without them.
* The effective receptive field (``nas.measure.erf``) of the trained network on the first
  ``erf_images`` validation images: the ratios, and the contribution map averaged down to at most
  ``ERF_MAP_SIDE`` pixels a side (it travels in the row: no shared filesystem needed).
* Feature diversity (``nas.measure.featdiv``) of the trained network on the first
  ``featdiv_images`` validation images: ``featdiv_s<i>`` per stage.

A proxy, ERF or feature diversity that cannot be computed is NaN with its reason
(``proxy_errors``, ``erf_error``, ``featdiv_error``);
it never fails a trial.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from nas.settings import MEASURE_DEFAULTS, MEASURE_RULES, parse_fields
from nas.vocab import ERF_COLUMNS, FEATDIV_COLUMNS

__all__ = [
    "ERF_MAP_SIDE",
    "erf_columns",
    "featdiv_columns",
    "init_proxies",
    "measure_settings",
    "proxy_batch",
]

ERF_MAP_SIDE = 32


def measure_settings(measure: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``measure:`` section with its defaults (proxies on, ERF off)."""
    given = parse_fields(dict(measure or {}), MEASURE_RULES, source="measure")
    return {**MEASURE_DEFAULTS, **given}


def proxy_batch(data, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training images (fewer when the split is smaller), drawn with a generator seeded by
    ``seed`` (augmented as the trainer's batches are), on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    return next(data.batches("train", min(n, data.num_train), generator=gen, device="cpu"))


def init_proxies(
    model, data, settings: Mapping[str, Any], *, seed: int, num_classes: int
) -> dict[str, Any]:
    """Columns of the zero-cost proxies of ``model`` (at init; left unchanged): one per proxy,
    ``proxy_errors`` (JSON ``{proxy: reason}`` or None) and ``proxy_s`` (seconds). Labels are
    taken modulo ``num_classes`` (a candidate with fewer classes than the data set)."""
    from nas.measure.proxies import zero_cost_proxies

    which = tuple(settings["proxies"])
    if not which:
        return {}
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        images, labels = proxy_batch(data, settings["proxy_batch"], seed)
        labels = (labels % num_classes).to(device)
        out = zero_cost_proxies(model, images.to(device), labels, which=which)
    errors = out.pop("proxy_errors")
    return {**out, "proxy_errors": json.dumps(errors) if errors else None,
            "proxy_s": time.perf_counter() - t0}  # fmt: skip


def erf_columns(model, data, settings: Mapping[str, Any]) -> dict[str, Any]:
    """ERF ratios and the (downsampled) contribution map of ``model`` on validation images;
    ``{}`` when the ``measure:`` section leaves the ERF off."""
    from nas.measure.erf import erf_map, erf_ratios

    if not settings["erf"]:
        return {}

    def measure(images: torch.Tensor) -> dict[str, Any]:
        contribution = erf_map(model, images).double().cpu()
        side = min(ERF_MAP_SIDE, *contribution.shape)
        small = F.adaptive_avg_pool2d(contribution[None, None], side)[0, 0]
        return {
            **erf_ratios(contribution),
            "erf_map": [[float(f"{v:.6g}") for v in row] for row in small.tolist()],
        }

    return _on_val_images(model, data, settings["erf_images"], measure, "erf", ERF_COLUMNS)


def featdiv_columns(model, data, settings: Mapping[str, Any]) -> dict[str, Any]:
    """``featdiv_s<i>`` per stage of ``model`` on validation images, ``featdiv_images`` and
    ``featdiv_s`` (seconds); ``{}`` when the ``measure:`` section leaves it off."""
    from nas.measure.featdiv import stage_diversity

    if not settings["feature_diversity"]:
        return {}
    measure = partial(stage_diversity, model)
    return _on_val_images(
        model, data, settings["featdiv_images"], measure, "featdiv", FEATDIV_COLUMNS
    )


def _on_val_images(model, data, images: int, measure, prefix: str, columns) -> dict[str, Any]:
    """``measure(images)`` on the first ``images`` validation images (at most the split), with
    ``<prefix>_images``, ``<prefix>_s`` (seconds) and ``<prefix>_error``: NaN ``columns`` and the
    reason when it fails (the trial goes on)."""
    t0 = time.perf_counter()
    try:
        device = next(model.parameters()).device
        n = min(int(images), data.num_val)
        batch, _ = next(data.batches("val", n, generator=None, device=device))
        out: dict[str, Any] = {**measure(batch.to(device)), f"{prefix}_error": None}
        out[f"{prefix}_images"] = n
    except Exception as e:  # noqa: BLE001 - recorded in the row, the trial goes on
        out = {**dict.fromkeys(columns, math.nan), f"{prefix}_error": f"{type(e).__name__}: {e}"}
    out[f"{prefix}_s"] = time.perf_counter() - t0
    return out
