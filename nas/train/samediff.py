"""Same-different (SVRT problem #1, Fleuret et al. 2011; "Not-So-CLEVR", Kim, Ricci & Serre 2018):
two random binary glyphs far apart in the image, label 1 when they are the same glyph.

The glyphs are ``glyph x glyph`` cells with exactly ``round(density * glyph**2)`` inked pixels,
each touching all four sides of its cell (so no glyph is a shifted copy of another, and the
label can be read back from the ink alone). Their centres are at least ``min_distance`` pixels
apart (default ``image_size / 2``): a network whose receptive field is smaller than that cannot
put the two glyphs side by side. That is the axis the task targets (RepLKNet's large kernels,
Container's dynamic affinity).

Shortcuts are removed by construction: every image draws its positions and two glyph candidates
the same way, before its label is known; the label only says whether the second cell shows the
first glyph again (1) or the second candidate (0). So ink per image (always ``2 * round(density
* glyph**2)``), the glyphs' positions and their distance have one distribution for both classes.

Vectorised numpy over a batch of images; positions are drawn by rejection, a few tries per image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nas.errors import UserError
from nas.train import procedural

__all__ = ["DEFAULTS", "VERSION", "generate", "load"]

VERSION = 1  # bump when the drawing changes: it is part of the cache key
DEFAULTS: dict[str, Any] = {
    "num_images": 10000,
    "glyph": 5,
    "density": 0.5,
    "min_distance": None,  # image_size / 2
    "seed": 0,
}
_BATCH = 1024  # images tried per round: part of the random stream, so of the output
_MAX_ROUNDS = 200
_TRIES = 8  # position pairs tried per image


def load(settings: Mapping[str, Any] | None, image_size: int):
    """(images uint8 (N, 1, S, S), labels (N,), extras {"positions": (N, 2, 2) top-left row, col})."""
    full = {**DEFAULTS, **(settings or {})}
    procedural.check_size("samediff", image_size)
    return procedural.load_procedural("samediff", VERSION, generate, full, image_size)


def min_distance(s: Mapping[str, Any], size: int) -> float:
    """The least distance between the glyphs' centres, checked against what fits in the image."""
    want = size / 2 if s["min_distance"] is None else float(s["min_distance"])
    most = (size - s["glyph"]) * math.sqrt(2)  # opposite corners
    if want > most:
        raise UserError(
            f"data.samediff.min_distance: {want:g} px, but two glyphs of {s['glyph']} px are at "
            f"most {most:.1f} px apart at image_size {size}; lower min_distance or raise image_size"
        )
    return want


def generate(s: Mapping[str, Any], size: int):
    import numpy as np

    rng = np.random.default_rng([s["seed"], 0x5D1F])
    n, g, least = s["num_images"], s["glyph"], min_distance(s, size)
    ink = round(s["density"] * g * g)
    where = _collect(lambda b: _positions(rng, g, size, least, b), n, s, size, least)
    first = _collect(lambda b: _glyphs(rng, g, ink, b), n, s, size, least)
    second = _collect(lambda b: _glyphs(rng, g, ink, b), n, s, size, least)
    for _ in range(64):  # a second candidate equal to the first is drawn again
        again = np.flatnonzero((first == second).all(axis=(1, 2)))
        if len(again) == 0:
            break
        second[again] = _collect(lambda b: _glyphs(rng, g, ink, b), len(again), s, size, least)
    labels = procedural.balanced_labels(rng, n)
    second = np.where(labels[:, None, None] == 1, first, second)
    return _draw(first, second, where, size), labels, {"positions": where}


def _collect(draw, n: int, s: Mapping[str, Any], size: int, least: float):
    """``n`` items from rounds of ``draw(batch) -> (items, usable)``; one line if few are usable."""
    import numpy as np

    kept, count, tried = [], 0, 0
    while count < n:
        if tried >= _MAX_ROUNDS * _BATCH or (tried >= 8 * _BATCH and count < tried / 200):
            raise UserError(
                f"data.samediff: only {count} of {tried} tries fit at image_size {size} (glyph "
                f"{s['glyph']}, density {s['density']:g}, min_distance {least:g}); lower "
                "min_distance or raise image_size"
            )
        items, ok = draw(_BATCH)
        kept.append(items[ok])
        count += int(ok.sum())
        tried += _BATCH
    return np.concatenate(kept)[:n]


def _positions(rng, g: int, size: int, least: float, batch: int):
    """Top-left corners (B, 2 glyphs, row/col): the first of a few tries whose centres are at
    least ``least`` apart and whose cells keep a pixel of background between them; usable (B,)."""
    import numpy as np

    tries = rng.integers(0, size - g + 1, (batch, _TRIES, 2, 2))
    d = tries[:, :, 0] - tries[:, :, 1]
    fits = (np.hypot(d[..., 0], d[..., 1]) >= least) & (np.abs(d).max(axis=-1) > g)
    return tries[np.arange(batch), fits.argmax(axis=1)], fits.any(axis=1)


def _glyphs(rng, g: int, ink: int, batch: int):
    """Glyphs (B, g, g) with exactly ``ink`` pixels set, uniform among such patterns, and which of
    them touch all four sides of their cell (B,)."""
    rank = rng.random((batch, g * g)).argsort(axis=-1).argsort(axis=-1)
    cells = (rank < ink).reshape(batch, g, g)
    touch = cells[:, 0].any(axis=1) & cells[:, -1].any(axis=1)
    touch &= cells[:, :, 0].any(axis=1) & cells[:, :, -1].any(axis=1)
    return cells, touch


def _draw(first, second, where, size: int):
    """uint8 images (N, 1, S, S): ``first`` at ``where[:, 0]``, ``second`` at ``where[:, 1]``."""
    import numpy as np

    n, g, _ = first.shape
    img = np.zeros((n, size, size), dtype=np.uint8)
    off = np.arange(g)
    rows = np.arange(n)[:, None, None]
    for i, cells in enumerate((first, second)):
        r = where[:, i, 0, None, None] + off[:, None]
        c = where[:, i, 1, None, None] + off[None, :]
        img[rows, r, c] = cells.astype(np.uint8) * 255
    return img[:, None]
