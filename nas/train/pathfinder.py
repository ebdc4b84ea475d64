"""Pathfinder (Linsley et al., NeurIPS 2018; the Long Range Arena's Pathfinder): two square
markers and ``2 + distractors`` dashed curves; label 1 when one curve joins the two markers.

The shortcuts such a generator invites are removed by construction: every image draws the same
number of curves of the same length and dash pattern, placed the same way whatever the label, and
the classes differ only in which two curve ends carry the markers: both ends of curve 0 (joined,
label 1) or one end of curve 0 and one of curve 1 (not joined, label 0). Curve 1 is placed with
that end at the mirror image of curve 0's far end across the line from the image centre through
the kept end: the unjoined pair is the joined pair mirrored, as far apart, each marker as far from
the image centre as its counterpart (images where no try of curve 1 fits are dropped for both).
So the marker distance, the ink, the number of curves and of free curve ends have one
distribution for both classes. Pixels of different curves stay more than ``2 * ceil(gap / 2) + 1``
apart (Chebyshev), so closing the dash gaps never merges two curves.

Vectorised numpy over a batch of images: curves are random walks of half-pixel steps whose heading
turns by at most ``turn / 2`` radians per step, rasterised at the nearest pixel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nas.errors import UserError
from nas.train import procedural

__all__ = ["DEFAULTS", "VERSION", "generate", "load"]

VERSION = 2  # bump when the drawing changes: it is part of the cache key
DEFAULTS: dict[str, Any] = {
    "num_images": 10000,
    "curve_length": 12,
    "distractors": 1,
    "dash": 3,
    "gap": 2,
    "turn": 0.3,
    "marker_radius": 1,
    "seed": 0,
}
_BATCH = 256  # images tried per round: part of the random stream, so of the output
_MAX_ROUNDS = 400
_TRIES = 12  # directions for curve 1's end, positions for each distractor


def load(settings: Mapping[str, Any] | None, image_size: int):
    """(images uint8 (N, 1, S, S), labels (N,), extras {"markers": (N, 2, 2) row, col})."""
    full = {**DEFAULTS, **(settings or {})}
    procedural.check_size("pathfinder", image_size)
    return procedural.load_procedural("pathfinder", VERSION, generate, full, image_size)


def generate(s: Mapping[str, Any], size: int):
    import numpy as np

    rng = np.random.default_rng([s["seed"], 0x9A7F])
    n = s["num_images"]
    kept: list[tuple] = []
    count, tried = 0, 0
    while count < n:
        hopeless = tried >= 8 * _BATCH and count < tried / 200  # under 0.5% accepted
        if tried >= _MAX_ROUNDS * _BATCH or hopeless:
            raise UserError(
                f"data.pathfinder: only {count} of {tried} tries fit at image_size {size} "
                f"(curve_length {s['curve_length']}, distractors {s['distractors']}, gap "
                f"{s['gap']}); shorten the curves, lower distractors or gap, or raise image_size"
            )
        pts, phase, unjoined, ok = _curves(rng, s, size, _BATCH)
        kept.append((pts[ok], phase[ok], unjoined[ok]))
        count += int(ok.sum())
        tried += _BATCH
    pts = np.concatenate([k[0] for k in kept])[:n]
    phase = np.concatenate([k[1] for k in kept])[:n]
    unjoined = np.concatenate([k[2] for k in kept])[:n]
    labels = procedural.balanced_labels(rng, n)
    images, markers = _draw(pts, phase, unjoined, labels, s, size)
    return images, labels, {"markers": markers}


def _curves(rng, s: Mapping[str, Any], size: int, batch: int):
    """Points (B, C, P, 2) as (row, col), dash phases (B, C), the unjoined marker pair (B, 2, 2)
    and which images could be drawn (B,): each curve turned and placed at the first of a few tries
    where it fits and keeps clear of the curves placed before it."""
    import numpy as np

    c, p, r = 2 + s["distractors"], 2 * s["curve_length"] + 1, s["marker_radius"]
    heading = rng.uniform(0, 2 * math.pi, (batch, c, 1))
    turns = rng.uniform(-s["turn"] / 2, s["turn"] / 2, (batch, c, p - 1))
    angle = heading + np.concatenate([np.zeros((batch, c, 1)), np.cumsum(turns, axis=2)], axis=2)
    step = 0.5 * np.stack([np.sin(angle[..., :-1]), np.cos(angle[..., :-1])], axis=-1)
    rel = np.concatenate([np.zeros((batch, c, 1, 2)), np.cumsum(step, axis=2)], axis=2)
    spin = rng.uniform(0, 2 * math.pi, (batch, c, _TRIES))  # each try turns the curve
    clear = _Clearance(s, size, batch)
    pts = np.empty_like(rel)
    ok = np.ones(batch, dtype=bool)
    rows = np.arange(batch)
    for j in range(c):
        turned = _rotate(rel[:, j : j + 1], spin[:, j])  # (B, K, P, 2)
        if j == 1:  # an end of curve 1 at the mirror image of an end of curve 0
            moved, pair = _mirrored(rng, pts[:, 0], turned, size)
        else:
            low = r - turned.min(axis=2, keepdims=True)
            room = np.maximum(size - 1 - r - turned.max(axis=2, keepdims=True) - low, 0)
            moved = turned + low + rng.random(room.shape) * room
        pts[:, j], found, pick = clear.first_free(moved)
        ok &= found
        if j < c - 1:  # the last curve has no curve after it to keep clear of it
            clear.add(pts[:, j])
        if j == 1:
            which = pair[rows, pick]  # (B, 2): the end of curve 0 and of curve 1, as 0 or -1
    unjoined = np.stack([pts[rows, 0, which[:, 0]], pts[rows, 1, which[:, 1]]], axis=1)
    phase = rng.uniform(0, s["dash"] + s["gap"], (batch, c))
    return pts, phase, unjoined, ok


def _mirrored(rng, curve0, turned, size: int):
    """``turned`` (B, K, P, 2) moved so that one of its ends lies at the mirror image of one end
    of curve 0 (the far end) across the line from the image centre through its other end (the
    kept end); and the pairs (kept end of curve 0, that end of curve 1) as (B, K, 2) of 0 or -1.
    The unjoined pair is then the joined pair mirrored: the same distance apart, each marker as far
    from the centre as its counterpart."""
    import numpy as np

    b, k = turned.shape[:2]
    pair = -rng.integers(0, 2, (b, k, 2))  # 0: the first point, -1: the last
    rows = np.arange(b)[:, None]
    kept, far = curve0[rows, pair[..., 0]], curve0[rows, -1 - pair[..., 0]]  # (B, K, 2)
    axis = kept - (size - 1) / 2
    axis = axis / np.maximum(np.hypot(axis[..., 0], axis[..., 1]), 1e-9)[..., None]
    rel = far - (size - 1) / 2
    image = 2 * (rel * axis).sum(axis=-1, keepdims=True) * axis - rel + (size - 1) / 2
    own = turned[rows, np.arange(k)[None], pair[..., 1]]  # (B, K, 2)
    return turned + (image - own)[:, :, None], pair


def _rotate(v, angle):
    """``v`` (..., 2) turned by ``angle``, whose axes broadcast against v's leading ones."""
    import numpy as np

    cos, sin = np.cos(angle), np.sin(angle)
    while cos.ndim < v.ndim - 1:
        cos, sin = cos[..., None], sin[..., None]
    return np.stack([cos * v[..., 0] - sin * v[..., 1], sin * v[..., 0] + cos * v[..., 1]], -1)


class _Clearance:
    """Pixels within reach of the curves placed so far (their traces and end squares), per image:
    a new curve must keep ``2 * ceil(gap / 2) + 1`` pixels (Chebyshev) away, so that closing the
    dash gaps of one curve never joins it to another."""

    def __init__(self, s: Mapping[str, Any], size: int, batch: int) -> None:
        import numpy as np

        self.size, self.r = size, s["marker_radius"]
        self.reach = 2 * math.ceil(s["gap"] / 2) + 1
        self.near = np.zeros((batch, size, size), dtype=bool)  # the trace's forbidden pixels
        self.near_end = self.near.copy()  # an end square's centre's forbidden pixels

    def add(self, pts) -> None:
        import numpy as np

        b, n = len(pts), self.size
        px = np.clip(np.rint(pts).astype(np.int64), 0, n - 1)
        base = (np.arange(b) * n * n)[:, None]
        ink = np.zeros(b * n * n, dtype=bool)
        ink[(base + px[..., 0] * n + px[..., 1]).ravel()] = True
        ends = np.zeros_like(ink)
        ends[(base + px[:, [0, -1], 0] * n + px[:, [0, -1], 1]).ravel()] = True
        shape = (b, n, n)
        ink = ink.reshape(shape) | procedural.dilate(ends.reshape(shape), self.r)
        self.near |= procedural.dilate(ink, self.reach)
        self.near_end = procedural.dilate(self.near, self.r)

    def first_free(self, tries, also=None):
        """(the first of ``tries`` (B, K, P, 2) inside the image, clear of the curves placed so
        far and ``also`` (B, K) where given, else the first; whether one was found; which try)."""
        import numpy as np

        b, n, r = len(tries), self.size, self.r
        px = np.rint(tries).astype(np.int64)
        inside = ((px >= r) & (px <= n - 1 - r)).all(axis=(2, 3))
        px = np.clip(px, 0, n - 1)
        rows = np.arange(b)[:, None, None]
        hit = self.near[rows, px[..., 0], px[..., 1]].any(axis=2)
        hit |= self.near_end[rows, px[:, :, [0, -1], 0], px[:, :, [0, -1], 1]].any(axis=2)
        good = inside & ~hit if also is None else inside & ~hit & also
        pick = np.where(good.any(axis=1), good.argmax(axis=1), 0)
        return tries[np.arange(b), pick], good.any(axis=1), pick


def _draw(pts, phase, unjoined, labels, s: Mapping[str, Any], size: int):
    """uint8 images (N, 1, S, S): dashed curves and the two markers; markers (N, 2, 2)."""
    import numpy as np

    n, c, p, _ = pts.shape
    px = np.rint(pts).astype(np.int64)
    arc = np.arange(p) * 0.5
    period = s["dash"] + s["gap"]
    ink = (arc[None, None, :] + phase[..., None]) % period < s["dash"]
    img = np.zeros(n * size * size, dtype=np.uint8)
    flat = (np.arange(n) * size * size)[:, None, None] + px[..., 0] * size + px[..., 1]
    img[flat[ink]] = 255
    apart = np.rint(unjoined).astype(np.int64)
    markers = np.where(labels[:, None, None] == 1, px[:, 0, [0, -1]], apart)  # (N, 2, 2)
    r = s["marker_radius"]
    off = np.arange(-r, r + 1)
    rows = markers[..., 0, None, None] + off[:, None]
    cols = markers[..., 1, None, None] + off[None, :]
    img[((np.arange(n) * size * size)[:, None, None, None] + rows * size + cols).ravel()] = 255
    return img.reshape(n, 1, size, size), markers
