"""What every procedural data set (``nas.train.pathfinder``, ``nas.train.samediff``) promises:
the same seed gives the same images bit for bit, balanced labels, a cache of arrays only (a
broken cache file is generated again); and the shortcut check both generators' tests use."""

from __future__ import annotations

import numpy as np
import pytest

from nas.train import pathfinder, procedural, samediff
from nas.train.data import DataConfig, load_data

GENERATORS = {"pathfinder": pathfinder, "samediff": samediff}


@pytest.fixture(autouse=True)
def no_shared_cache(tmp_path, monkeypatch):
    """A private cache folder per test (and an empty in-memory cache)."""
    monkeypatch.setenv("NAS_CACHE", str(tmp_path / "cache"))
    procedural._MEMORY.clear()


def small(name: str, n: int = 400) -> dict:
    return {**GENERATORS[name].DEFAULTS, "num_images": n}


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_images_bit_identical(name):
    gen = GENERATORS[name].generate
    a, b = gen(small(name), 32), gen(dict(small(name)), 32)
    assert a[0].dtype == np.uint8 and a[0].shape == (400, 1, 32, 32)
    assert a[0].tobytes() == b[0].tobytes() and np.array_equal(a[1], b[1])
    assert a[2].keys() == b[2].keys()
    assert all(np.array_equal(a[2][k], b[2][k]) for k in a[2])
    other = gen({**small(name), "seed": 1}, 32)
    assert not np.array_equal(a[0], other[0])


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("n", [400, 401])
def test_labels_balanced(name, n):
    _, labels, _ = GENERATORS[name].generate(small(name, n), 32)
    assert labels.dtype == np.int64 and set(np.unique(labels)) == {0, 1}
    assert abs(int(labels.sum()) - (n - int(labels.sum()))) <= 1


@pytest.mark.parametrize("name", GENERATORS)
def test_load_data_caches_arrays_only(tmp_path, name):
    cfg = DataConfig.from_dict({"dataset": name, "image_size": 32, name: {"num_images": 300}})
    first = load_data(cfg)
    files = list((tmp_path / "cache" / "procedural").glob(f"{name}-*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as z:  # readable without pickle
        assert z["images"].dtype == np.uint8 and z["labels"].shape == (300,)
    procedural._MEMORY.clear()
    again = load_data(cfg)  # from the file
    assert np.array_equal(first.train_x.numpy(), again.train_x.numpy())
    assert first.num_classes == 2 and first.crop_pad == 0 and len(first.val_y) == 60
    files[0].write_bytes(b"not an npz")  # a broken cache file is generated again
    procedural._MEMORY.clear()
    assert np.array_equal(load_data(cfg).val_x.numpy(), first.val_x.numpy())


def fit_logistic(features, labels) -> float:
    """Held-out accuracy (the last third) of a logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(features)
    n = len(labels) * 2 // 3
    clf = LogisticRegression(max_iter=2000).fit(x[:n], labels[:n])
    return float(clf.score(x[n:], labels[n:]))


def assert_no_shortcut(images, labels, stats, distance, *, atol: float) -> None:
    """A linear classifier on the image statistics ``stats`` or on the 4x4-pooled image stays near
    chance (0.5; 2 sd ~ 0.03 on 1,000 held-out images), and ``distance`` (between the two objects
    the label is about) has one distribution in both classes, not only the same mean."""
    size = images.shape[-1]
    pooled = images[:, 0].reshape(-1, 8, size // 8, 8, size // 8).mean(axis=(2, 4))
    acc_stats = fit_logistic(stats, labels)
    acc_pooled = fit_logistic(pooled.reshape(len(images), -1), labels)
    print(f"logistic regression accuracy: statistics {acc_stats:.3f}, 4x4-pooled {acc_pooled:.3f}")
    assert 0.44 < acc_stats < 0.56 and 0.44 < acc_pooled < 0.56
    assert np.allclose(np.quantile(distance[labels == 1], [0.1, 0.5, 0.9]),
                       np.quantile(distance[labels == 0], [0.1, 0.5, 0.9]), atol=atol)  # fmt: skip
