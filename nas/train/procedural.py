"""What the procedural data sets share: their settings (defaults + ``data.<name>``), a cache per
settings (in memory and in a folder of ``.npz`` files holding only arrays), and raster helpers.

A generator is a pure function ``(settings, image_size) -> (images uint8 (N, 1, S, S), labels
int64 (N,), extras dict of arrays)``: the same settings give bit-identical arrays. The cache key is
a SHA-256 of the data set's name, the generator's version, the image size and every setting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import UserError
from nas.settings import procedural_size_problem

if TYPE_CHECKING:
    import numpy as np

__all__ = ["cache_dir", "dilate", "load_procedural", "settings_key"]

log = logging.getLogger(__name__)

Generator = Callable[[Mapping[str, Any], int], tuple["np.ndarray", "np.ndarray", dict]]
_MEMORY: dict[str, tuple] = {}  # key -> (images, labels, extras): the last few generated sets
_MEMORY_SLOTS = 4


def settings_key(name: str, version: int, image_size: int, settings: Mapping[str, Any]) -> str:
    blob = json.dumps(
        {"name": name, "version": version, "image_size": image_size, **settings}, sort_keys=True
    )
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}"


def cache_dir() -> Path | None:
    """``$NAS_CACHE/procedural`` (default ``~/.cache/nas/procedural``); ``NAS_CACHE=off``: none."""
    raw = os.environ.get("NAS_CACHE", "~/.cache/nas")
    return None if raw == "off" else Path(raw).expanduser() / "procedural"


def load_procedural(
    name: str, version: int, generate: Generator, settings: Mapping[str, Any], image_size: int
):
    """(images, labels, extras) for these settings: from memory, the cache folder, or generated
    (and then stored in both)."""
    key = settings_key(name, version, image_size, settings)
    if key in _MEMORY:
        return _MEMORY[key]
    folder = cache_dir()
    found = _read(folder / f"{key}.npz") if folder is not None else None
    if found is None:
        found = generate(settings, image_size)
        if folder is not None:
            _write(folder, key, found)
    while len(_MEMORY) >= _MEMORY_SLOTS:
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[key] = found
    return found


def _read(file: Path):
    import numpy as np

    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as z:  # arrays only: nothing in it can run code
            images, labels = z["images"], z["labels"]
            extras = {k[6:]: z[k] for k in z.files if k.startswith("extra_")}
        ok = images.dtype == np.uint8 and images.ndim == 4 and labels.dtype == np.int64
        if ok and labels.shape == (len(images),):
            return images, labels, extras
    except (OSError, ValueError, KeyError, EOFError) as e:
        log.warning("%s: unreadable cache file (%s); generating again", file, e)
    return None


def _write(folder: Path, key: str, found) -> None:
    import numpy as np

    images, labels, extras = found
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.npz"
        arrays = {"images": images, "labels": labels} | {f"extra_{k}": v for k, v in extras.items()}
        np.savez(tmp, **arrays)
        os.replace(tmp, folder / f"{key}.npz")  # atomic: a concurrent reader sees all or nothing
    except OSError as e:  # a read-only home is no reason to fail a trial
        log.warning("%s: cannot cache %s (%s)", folder, key, e)


def check_size(name: str, image_size: int) -> None:
    problem = procedural_size_problem(name, image_size)
    if problem is not None:
        raise UserError(f"data.image_size: {problem}")


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation of the last two axes by a (2r+1)-square (separable shifted maxima)."""
    import numpy as np

    out = mask.copy()
    for axis in (-1, -2):
        src = out.copy()
        for d in range(1, r + 1):
            lo = [slice(None)] * out.ndim
            hi = [slice(None)] * out.ndim
            lo[axis], hi[axis] = slice(d, None), slice(None, -d)
            np.logical_or(out[tuple(lo)], src[tuple(hi)], out=out[tuple(lo)])
            np.logical_or(out[tuple(hi)], src[tuple(lo)], out=out[tuple(hi)])
    return out


def balanced_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Half 0 and half 1 (n odd: one more 0), in a seeded random order."""
    import numpy as np

    return rng.permutation(np.arange(n, dtype=np.int64) % 2)
