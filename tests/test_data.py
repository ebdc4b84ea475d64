"""nas.train.data: digits, fake CIFAR-10 folders, ImageFolder's message, synthetic, augmentation,
batching and config checking."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from nas.errors import UserError
from nas.train.data import DataConfig, augment, iterate_batches, load_data, split_indices


@pytest.fixture(scope="module")
def digits():
    return load_data(DataConfig(dataset="digits", image_size=16))


def test_digits_shapes_and_normalisation(digits):
    assert digits.train_x.shape == (1438, 3, 16, 16) and digits.val_x.shape == (359, 3, 16, 16)
    assert digits.train_x.dtype == torch.float32 and digits.train_y.dtype == torch.int64
    assert digits.num_classes == 10 and digits.in_chans == 3 and digits.name == "digits"
    # normalised with the train split's statistics: per channel mean 0, std 1 on train
    assert digits.train_x.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    torch.testing.assert_close(digits.train_x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4, rtol=0)
    assert torch.equal(digits.train_x[:, 0], digits.train_x[:, 2])  # grey replicated
    # stratified: every class in val, 35-37 of each
    counts = torch.bincount(digits.val_y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    assert digits.flip is False and digits.crop_pad == 2  # digits are not flip-invariant


def test_digits_split_is_seeded(digits):
    again = load_data(DataConfig(dataset="digits", image_size=16))
    assert torch.equal(again.val_x, digits.val_x) and torch.equal(again.train_y, digits.train_y)
    other = load_data(DataConfig(dataset="digits", image_size=16, seed=1, limit=300))
    assert len(other.train_y) + len(other.val_y) == 300
    assert not torch.equal(other.val_y, digits.val_y[: len(other.val_y)])


def test_split_indices_disjoint_and_stratified():
    labels = np.repeat(np.arange(4), 10)
    tr, va = split_indices(labels, 0.3, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 40
    assert np.bincount(labels[va]).tolist() == [3, 3, 3, 3]


def _fake_cifar(folder, n: int = 20, *, skip: str | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        if name == skip:
            continue
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [i % 10 for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder


def test_cifar10_fake_folder(tmp_path, monkeypatch):
    root = _fake_cifar(tmp_path / "cifar-10-batches-py").parent
    monkeypatch.setenv("NAS_DATA", str(root))  # the folder *containing* cifar-10-batches-py/
    d = load_data(DataConfig(dataset="cifar10", image_size=32))
    assert d.train_x.shape == (80, 3, 32, 32) and d.val_x.shape == (20, 3, 32, 32)
    assert d.num_classes == 10 and d.flip is True and d.crop_pad == 4
    small = load_data(
        DataConfig(dataset="cifar10", image_size=16, path=str(root / "cifar-10-batches-py"))
    )
    assert small.train_x.shape[-2:] == (16, 16)


def test_cifar10_missing_or_malformed(tmp_path, monkeypatch):
    monkeypatch.delenv("NAS_DATA", raising=False)
    with pytest.raises(UserError, match="set data.path or the NAS_DATA"):
        load_data(DataConfig(dataset="cifar10"))
    with pytest.raises(UserError, match="is not a folder"):
        load_data(DataConfig(dataset="cifar10", path=str(tmp_path / "nope")))
    folder = _fake_cifar(tmp_path / "partial", skip="data_batch_3")
    with pytest.raises(UserError, match="has no data_batch_3") as e:
        load_data(DataConfig(dataset="cifar10", path=str(folder)))
    assert "\n" not in str(e.value)
    folder = _fake_cifar(tmp_path / "bad")
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": [1, 2, 3]}))
    with pytest.raises(UserError, match="data_batch_2 is not a CIFAR-10 python batch"):
        load_data(DataConfig(dataset="cifar10", path=str(folder)))
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="not a CIFAR-10 python batch"):
        load_data(DataConfig(dataset="cifar10", path=str(folder)))


def test_imagefolder_needs_torchvision(tmp_path):
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(
            UserError, match=r"^imagefolder needs torchvision: pip install torchvision$"
        ):
            load_data(DataConfig(dataset="imagefolder", path=str(tmp_path)))
    else:
        pytest.skip("torchvision is installed")


def test_synthetic_is_seeded():
    a = load_data(DataConfig(dataset="synthetic", num_classes=4, limit=200))
    b = load_data(DataConfig(dataset="synthetic", num_classes=4, limit=200))
    assert a.num_classes == 4 and len(a.train_y) + len(a.val_y) == 200
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)


def test_augment_deterministic_and_shape_preserving():
    x = torch.randn(16, 3, 12, 12)
    out1 = augment(x, torch.Generator().manual_seed(0), pad=2, flip=True)
    out2 = augment(x, torch.Generator().manual_seed(0), pad=2, flip=True)
    out3 = augment(x, torch.Generator().manual_seed(1), pad=2, flip=True)
    assert out1.shape == x.shape and torch.equal(out1, out2) and not torch.equal(out1, out3)
    assert augment(x, torch.Generator(), pad=0, flip=False) is x


def test_augment_flip_and_crop_are_exact():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    flipped = augment(x, torch.Generator().manual_seed(0), pad=0, flip=True)
    same = (flipped == x).flatten(1).all(1)
    mirrored = (flipped == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and same.any() and mirrored.any()
    shifted = augment(x, torch.Generator().manual_seed(0), pad=1, flip=False)
    padded = torch.nn.functional.pad(x[:1], (1, 1, 1, 1), mode="reflect")[0, 0]
    windows = {
        tuple(padded[i : i + 4, j : j + 4].flatten().tolist()) for i in range(3) for j in range(3)
    }
    assert all(tuple(s[0].flatten().tolist()) in windows for s in shifted)


def test_iterate_batches():
    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    batches = list(iterate_batches(x, y, 4, generator=torch.Generator().manual_seed(0)))
    assert [len(b[1]) for b in batches] == [4, 4]  # drop_last
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in batches)
    ordered = list(iterate_batches(x, y, 4, generator=None, shuffle=False, drop_last=False))
    assert torch.equal(torch.cat([b[1] for b in ordered]), y)


@pytest.mark.parametrize(
    "d, match",
    [
        ({"dataset": "mnist"}, r"^data\.dataset: expected one of \['digits'.*got 'mnist'$"),
        ({"image_sise": 32}, r"^data\.image_sise: unknown key \(did you mean 'image_size'\?\)"),
        ({"image_size": "big"}, r"^data\.image_size: expected an integer >= 4, got 'big'$"),
        ({"val_fraction": 1.5}, r"^data\.val_fraction: expected a fraction in \(0, 1\), got 1\.5$"),
        ({"flip": "yes"}, r"^data\.flip: expected true, false or null"),
    ],
)
def test_data_config_errors(d, match):
    with pytest.raises(UserError, match=match):
        DataConfig.from_dict(d)


def test_data_config_from_dict_source_and_defaults():
    with pytest.raises(UserError, match=r"^x\.yaml: data\.seed: "):
        DataConfig.from_dict({"seed": -1}, source="x.yaml: data")
    cfg = DataConfig.from_dict({"dataset": "synthetic", "image_size": 64, "val_fraction": "0.1"})
    assert cfg.flip is True and cfg.crop_pad == 8 and cfg.val_fraction == 0.1
    assert DataConfig().flip is False
