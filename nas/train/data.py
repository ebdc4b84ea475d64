"""Data sets for short-budget training: digits (embedded), CIFAR-10 (local folder), ImageFolder,
synthetic, and the procedural pathfinder and samediff (generated from a seed, cached).

Small data sets live on the training device as float32 tensors (normalised NCHW images, int64
labels) and are batched and augmented there (``iterate_batches``, ``augment``): no DataLoader, no
worker processes, no host-to-device copies per step. Large ImageFolder sets come as torch
Datasets instead (``DataSplits.train_set``), batched by a DataLoader.

Splits are fixed by ``DataConfig.seed``: a stratified ``val_fraction`` of the (optionally
``limit``-ed) pool is held out for validation. For CIFAR-10 the pool is the 50,000 training
images; ``test_batch`` is left untouched for final evaluation, so architecture selection never
sees it. Normalisation uses the train split's per-channel mean and std (ImageFolder: ImageNet's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas.errors import UserError
from nas.train import datasets
from nas.train.config import DataConfig

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "DataConfig",
    "DataSplits",
    "augment",
    "iterate_batches",
    "load_data",
    "split_indices",
]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------- splits
@dataclass
class DataSplits:
    """Train/validation data: tensors (small sets, already on the device) or Datasets (large).

    Images are float32 NCHW normalised with ``mean``/``std``; labels int64.
    """

    train_x: torch.Tensor | None
    train_y: torch.Tensor | None
    val_x: torch.Tensor | None
    val_y: torch.Tensor | None
    num_classes: int
    in_chans: int
    name: str
    image_size: int = 32
    flip: bool = True
    crop_pad: int = 4
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    train_set: Any = None  # torch Dataset of (image, label): the loader alternative
    val_set: Any = None
    workers: int = 0

    @property
    def num_train(self) -> int:
        return len(self.train_y) if self.train_set is None else len(self.train_set)

    @property
    def num_val(self) -> int:
        return len(self.val_y) if self.val_set is None else len(self.val_set)

    def to(self, device: str | torch.device) -> DataSplits:
        """The same splits with the tensors on ``device`` (Datasets stay where they are)."""
        if self.train_set is not None:
            return self
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y")}
        return dataclasses.replace(self, **moved)

    def with_channels(self, in_chans: int) -> DataSplits:
        """The same splits with ``in_chans`` image channels, for a candidate whose stem takes a
        different number: 3 -> 1 by the channel mean (grayscale; digits are gray already), 1 -> n
        by repetition. Datasets read from a folder must match the candidate as they are."""
        if in_chans == self.in_chans:
            return self
        if self.train_set is not None or (in_chans != 1 and self.in_chans != 1):
            raise UserError(
                f"data: the candidate takes in_chans={in_chans} images, {self.name} has "
                f"{self.in_chans} channels (converted only between 1 and n for in-memory sets)"
            )

        def convert(x):
            return x.mean(dim=1, keepdim=True) if in_chans == 1 else x.repeat(1, in_chans, 1, 1)

        mean = (sum(self.mean) / len(self.mean),) if in_chans == 1 and self.mean else self.mean
        std = (sum(self.std) / len(self.std),) if in_chans == 1 and self.std else self.std
        if in_chans != 1 and self.mean:
            mean, std = self.mean * in_chans, self.std * in_chans
        return dataclasses.replace(
            self, train_x=convert(self.train_x), val_x=convert(self.val_x), in_chans=in_chans,
            mean=mean, std=std,
        )  # fmt: skip

    def batches(
        self, split: str, batch_size: int, *, generator: torch.Generator | None, device
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches on ``device``: shuffled with drop_last for ``train``, in order for ``val``."""
        train = split == "train"
        if self.train_set is None:
            x, y = (self.train_x, self.train_y) if train else (self.val_x, self.val_y)
            yield from iterate_batches(
                x, y, batch_size, generator=generator, shuffle=train, drop_last=train
            )
            return
        yield from _loader_batches(self, train, batch_size, generator, device)


def _loader_batches(data: DataSplits, train: bool, batch_size: int, generator, device):
    import torch

    cpu_gen = None
    if train:  # DataLoader shuffling needs a CPU generator: seed one from the device generator
        seed = torch.randint(0, 2**62, (), generator=generator, device=generator.device)
        cpu_gen = torch.Generator().manual_seed(int(seed))
    loader = torch.utils.data.DataLoader(
        data.train_set if train else data.val_set,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train,
        generator=cpu_gen,
        num_workers=data.workers,
        pin_memory=torch.device(device).type == "cuda",
        persistent_workers=False,
    )
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None,
    shuffle: bool = True,
    drop_last: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of on-device tensors; the permutation is drawn on ``x``'s device."""
    import torch

    n = len(x)
    order = torch.randperm(n, generator=generator, device=x.device) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        if order is None:
            yield x[i : i + batch_size], y[i : i + batch_size]
        else:
            idx = order[i : i + batch_size]
            yield x[idx], y[idx]


def augment(
    x: torch.Tensor, generator: torch.Generator, *, pad: int = 4, flip: bool = True
) -> torch.Tensor:
    """Random crop with ``pad`` reflect padding and random horizontal flip, per image, on x's
    device, as a single gather. ``generator`` must live on x's device."""
    import torch
    import torch.nn.functional as F

    if pad <= 0 and not flip:
        return x
    n, c, h, w = x.shape
    dev = x.device
    if pad > 0:
        mode = "reflect" if pad < min(h, w) else "replicate"
        x = F.pad(x, (pad, pad, pad, pad), mode=mode)
    dy = torch.randint(0, 2 * pad + 1, (n, 1, 1), generator=generator, device=dev)
    dx = torch.randint(0, 2 * pad + 1, (n, 1, 1), generator=generator, device=dev)
    cols = torch.arange(w, device=dev).expand(n, 1, w)
    if flip:
        mirrored = torch.rand(n, 1, 1, generator=generator, device=dev) < 0.5
        cols = torch.where(mirrored, w - 1 - cols, cols)
    rows = torch.arange(h, device=dev).view(1, h, 1) + dy
    idx = (rows * (w + 2 * pad) + cols + dx).view(n, 1, h * w).expand(n, c, h * w)
    return x.flatten(2).gather(2, idx).view(n, c, h, w)


def split_indices(
    labels: np.ndarray, val_fraction: float, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: ``round(val_fraction * n_c)`` images of each class to val."""
    import numpy as np

    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        val.append(idx[: round(val_fraction * len(idx))])
    val_idx = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx


# ---------------------------------------------------------------------- loading
def load_data(cfg: DataConfig, *, device: str | torch.device = "cpu") -> DataSplits:
    """Load ``cfg.dataset`` and split it; tensors end up on ``device``."""
    if cfg.dataset == "imagefolder":
        return _imagefolder(cfg)
    loaders = {
        "digits": datasets.digits,
        "cifar10": datasets.cifar10,
        "synthetic": datasets.synthetic,
        "pathfinder": datasets.pathfinder,
        "samediff": datasets.samediff,
    }
    images, labels = loaders[cfg.dataset](cfg)
    return _finish(cfg, images, labels, device)


def _finish(cfg: DataConfig, images, labels, device) -> DataSplits:
    """Limit, split, resize, normalise with the train statistics, move to ``device``."""
    import numpy as np
    import torch

    labels = np.asarray(labels, dtype=np.int64)
    num_classes = (cfg.num_classes or 10) if cfg.dataset == "synthetic" else int(labels.max()) + 1
    _check_classes(cfg, num_classes)
    pool = _pool(cfg, len(labels))
    tr, va = split_indices(labels[pool], cfg.val_fraction, seed=cfg.seed)
    if len(tr) == 0 or len(va) == 0:
        raise UserError(
            f"data.val_fraction: {cfg.val_fraction} of {len(pool)} images leaves an empty split"
        )
    y = torch.from_numpy(labels[pool])
    x_tr, x_va = (_prepare(images[torch.from_numpy(pool[i])], cfg.image_size) for i in (tr, va))
    mean = x_tr.mean(dim=(0, 2, 3), keepdim=True)
    std = x_tr.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    x_tr, x_va = (x.sub_(mean).div_(std) for x in (x_tr, x_va))
    y_tr, y_va = y[torch.from_numpy(tr)], y[torch.from_numpy(va)]
    return DataSplits(
        *(t.to(device) for t in (x_tr, y_tr, x_va, y_va)),
        num_classes=num_classes,
        in_chans=x_tr.shape[1],
        name=cfg.dataset,
        image_size=cfg.image_size,
        flip=cfg.flip,
        crop_pad=cfg.crop_pad,
        mean=tuple(mean.flatten().tolist()),
        std=tuple(std.flatten().tolist()),
    )


def _prepare(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 -> [0, 1] float32, bilinear resize to ``size``, grey -> 3 channels (a new tensor)."""
    import torch
    import torch.nn.functional as F

    x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    if x.shape[1] == 1:  # grey: replicate, so every candidate takes the same 3-channel input
        x = x.expand(-1, 3, -1, -1)
    return x.contiguous()


def _check_classes(cfg: DataConfig, num_classes: int) -> None:
    if cfg.num_classes is not None and cfg.num_classes != num_classes:
        raise UserError(
            f"data.num_classes: {cfg.dataset} has {num_classes} classes, got {cfg.num_classes}"
        )


def _pool(cfg: DataConfig, n: int) -> np.ndarray:
    """All indices, or a seeded random subset of ``cfg.limit`` of them (sorted)."""
    import numpy as np

    if cfg.limit is None or cfg.limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(cfg.seed).permutation(n)[: cfg.limit])


def _imagefolder(cfg: DataConfig) -> DataSplits:
    """One subfolder of images per class, decoded by torchvision workers (the loader form)."""
    try:
        from torchvision import datasets, transforms
    except ImportError:
        raise UserError("imagefolder needs torchvision: pip install torchvision") from None
    import numpy as np
    from torch.utils.data import Subset

    root = datasets.data_root(cfg, "one subfolder of images per class")
    tf = transforms.Compose(
        [
            transforms.Resize(cfg.image_size),
            transforms.CenterCrop(cfg.image_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    try:
        full = datasets.ImageFolder(str(root), transform=tf)
    except (FileNotFoundError, RuntimeError) as e:
        raise UserError(f"data.path: {root}: {str(e).splitlines()[0]}") from None
    _check_classes(cfg, len(full.classes))
    labels = np.asarray(full.targets)
    pool = _pool(cfg, len(labels))
    tr, va = split_indices(labels[pool], cfg.val_fraction, seed=cfg.seed)
    return DataSplits(
        None,
        None,
        None,
        None,
        num_classes=len(full.classes),
        in_chans=3,
        name=f"imagefolder:{root.name}",
        image_size=cfg.image_size,
        flip=cfg.flip,
        crop_pad=cfg.crop_pad,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        train_set=Subset(full, pool[tr].tolist()),
        val_set=Subset(full, pool[va].tolist()),
        workers=cfg.workers,
    )
