"""Readers of the data sets that fit in memory: each returns ``(images, labels)`` as tensors of the
whole pool (digits ships with scikit-learn; CIFAR-10 is read from a local folder of the python
batches; synthetic is generated). ``nas.train.data`` splits, normalises and batches them."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from nas.errors import UserError
from nas.train.config import DataConfig

__all__ = ["cifar10", "data_root", "digits", "pathfinder", "samediff", "synthetic"]

_CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


def digits(cfg: DataConfig):
    """scikit-learn's 1,797 8x8 digits (values 0..16), scaled to [0, 1]."""
    import importlib.util

    import numpy as np
    import torch

    # Read the CSV that scikit-learn bundles without importing sklearn.datasets (~3 s of
    # scipy imports); fall back to the public loader if the file ever moves.
    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise UserError("data.dataset: digits needs scikit-learn: pip install scikit-learn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if csv.is_file():
        table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
        images, labels = table[:, :-1], table[:, -1].astype(np.int64)
    else:  # pragma: no cover
        from sklearn.datasets import load_digits

        images, labels = load_digits(return_X_y=True)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).div_(16.0)
    return x.view(-1, 1, 8, 8), labels


def cifar10(cfg: DataConfig):
    """The five training batches of the python version of CIFAR-10 (uint8 NCHW, labels)."""
    import numpy as np
    import torch

    root = data_root(cfg, "the CIFAR-10 python batches (data_batch_1..5)")
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    missing = [b for b in _CIFAR_BATCHES if not (folder / b).is_file()]
    if missing:
        raise UserError(
            f"data.path: {folder} has no {missing[0]}; expected the CIFAR-10 python batches "
            "(data_batch_1..5) or a cifar-10-batches-py/ folder holding them"
        )
    xs, ys = [], []
    for name in _CIFAR_BATCHES:
        x, y = read_cifar_batch(folder / name)
        xs.append(x)
        ys.append(y)
    images = torch.from_numpy(np.concatenate(xs)).view(-1, 3, 32, 32)
    return images, np.concatenate(ys)


class _CifarUnpickler(pickle.Unpickler):
    """Loads the published batches (a dict of bytes, lists and numpy arrays) and nothing else: any
    other global (``os.system``, ``builtins.eval``, ...) is refused before it is looked up."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3 (harmless)
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR-10 batch")
        return super().find_class(module, name)


def read_cifar_batch(file: Path):
    import numpy as np

    expected = "a pickled dict with b'data' uint8 (N, 3072) and b'labels' (N,)"
    try:
        with open(file, "rb") as f:
            # pickle is the format CIFAR-10 ships in: only the classes of that format are loaded
            d = _CifarUnpickler(f, encoding="bytes").load()
        data, labels = d[b"data"], np.asarray(d[b"labels"], dtype=np.int64)
        ok = isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
        ok = ok and data.shape[1] == 3072 and labels.shape == (len(data),)
        ok = ok and bool(((labels >= 0) & (labels < 10)).all())
    except Exception:  # any unpickling or structure error means "not a CIFAR batch"
        ok = False
    if not ok:
        raise UserError(f"data.path: {file} is not a CIFAR-10 python batch; expected {expected}")
    return data, labels


def data_root(cfg: DataConfig, what: str) -> Path:
    raw = cfg.path or os.environ.get("NAS_DATA")
    if not raw:
        raise UserError(
            f"data.path: {cfg.dataset} needs a local folder with {what}; "
            "set data.path or the NAS_DATA environment variable"
        )
    root = Path(raw).expanduser()
    if not root.is_dir():
        src = "data.path" if cfg.path else "NAS_DATA"
        raise UserError(f"data.path: {root} (from {src}) is not a folder; expected {what}")
    return root


def synthetic(cfg: DataConfig):
    """Seeded, learnable: a smooth random prototype per class plus unit Gaussian noise."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(cfg.seed)
    k, n, s = cfg.num_classes or 10, cfg.limit or 640, cfg.image_size
    protos = F.interpolate(torch.randn(k, 3, 4, 4, generator=g), size=s, mode="bilinear")
    labels = torch.arange(n) % k
    labels = labels[torch.randperm(n, generator=g)]
    images = protos[labels] + torch.randn(n, 3, s, s, generator=g)
    return images, labels.numpy()


def pathfinder(cfg: DataConfig):
    """Pathfinder drawings (``nas.train.pathfinder``) at ``cfg.image_size``: uint8 (N, 1, S, S)."""
    import torch

    from nas.train import pathfinder as task

    images, labels, _ = task.load(cfg.pathfinder, cfg.image_size)
    return torch.from_numpy(images), labels


def samediff(cfg: DataConfig):
    """Same-different glyph pairs (``nas.train.samediff``) at ``cfg.image_size``: uint8 (N, 1, S, S)."""
    import torch

    from nas.train import samediff as task

    images, labels, _ = task.load(cfg.samediff, cfg.image_size)
    return torch.from_numpy(images), labels
