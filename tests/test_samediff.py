"""nas.train.samediff: determinism, balance, no shortcuts, labels checked independently, cache,
one-line errors (the CLI's exit 2 included)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from nas.errors import UserError
from nas.train import procedural, samediff
from nas.train.data import DataConfig, load_data

SMALL = {**samediff.DEFAULTS, "num_images": 400}


@pytest.fixture(autouse=True)
def _no_shared_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE", str(tmp_path / "cache"))
    procedural._MEMORY.clear()


def test_same_seed_same_images_bit_identical():
    a = samediff.generate(SMALL, 32)
    b = samediff.generate(dict(SMALL), 32)
    assert a[0].dtype == np.uint8 and a[0].shape == (400, 1, 32, 32)
    assert a[0].tobytes() == b[0].tobytes() and np.array_equal(a[1], b[1])
    assert np.array_equal(a[2]["positions"], b[2]["positions"])
    other = samediff.generate({**SMALL, "seed": 1}, 32)
    assert not np.array_equal(a[0], other[0])


@pytest.mark.parametrize("n", [400, 401])
def test_labels_balanced(n):
    _, labels, _ = samediff.generate({**SMALL, "num_images": n}, 32)
    assert labels.dtype == np.int64 and set(np.unique(labels)) == {0, 1}
    assert abs(int(labels.sum()) - (n - int(labels.sum()))) <= 1


def _ink_says_same(image, glyph: int) -> bool:
    """Independent of the generator: group the ink into two components after closing the gaps
    inside a glyph (a glyph-sized square), crop each to its ink's bounding box, compare."""
    from scipy import ndimage

    ink = image > 0
    closed = ndimage.binary_dilation(ink, structure=np.ones((glyph, glyph), bool))
    comp, count = ndimage.label(closed, structure=np.ones((3, 3), bool))
    assert count == 2  # two glyphs, apart
    crops = []
    for box in ndimage.find_objects(comp):
        part = ink[box] & (comp[box] > 0)
        rows, cols = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
        crops.append(part[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    return crops[0].shape == crops[1].shape and bool(np.array_equal(crops[0], crops[1]))


@pytest.mark.parametrize(
    "settings,size",
    [({}, 32), ({"glyph": 3, "density": 0.2}, 32), ({"glyph": 8, "min_distance": 40}, 64)],
)
def test_every_label_matches_an_independent_comparison(settings, size):
    s = {**samediff.DEFAULTS, "num_images": 200, **settings}
    images, labels, extras = samediff.generate(s, size)
    said = [_ink_says_same(images[i, 0], s["glyph"]) for i in range(200)]
    assert np.array_equal(np.array(said, dtype=np.int64), labels)
    least = size / 2 if s["min_distance"] is None else s["min_distance"]
    centres = extras["positions"] + (s["glyph"] - 1) / 2
    assert (np.hypot(*(centres[:, 0] - centres[:, 1]).T) >= least).all()
    ink = (images > 0).sum(axis=(1, 2, 3))
    assert (ink == 2 * round(s["density"] * s["glyph"] ** 2)).all()  # ink does not vary at all


def _fit_logistic(features, labels) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(features)
    n = len(labels) * 2 // 3
    clf = LogisticRegression(max_iter=2000).fit(x[:n], labels[:n])
    return float(clf.score(x[n:], labels[n:]))


@pytest.mark.heavy
def test_no_shortcut_in_simple_statistics_or_pooled_image():
    """A linear classifier on ink, its centroid and spread, the glyphs' distance and positions,
    or the 4x4-average-pooled image stays near chance (1,000 held-out images; 2 sd ~ 0.03)."""
    images, labels, extras = samediff.generate({**samediff.DEFAULTS, "num_images": 3000}, 32)
    ink = images[:, 0] > 0
    grid = np.arange(32)
    mass = ink.sum(axis=(1, 2))
    rows, cols = ink.sum(axis=2), ink.sum(axis=1)
    mean_r, mean_c = (rows * grid).sum(axis=1) / mass, (cols * grid).sum(axis=1) / mass
    spread_r = (rows * (grid - mean_r[:, None]) ** 2).sum(axis=1) / mass
    spread_c = (cols * (grid - mean_c[:, None]) ** 2).sum(axis=1) / mass
    where = extras["positions"].reshape(len(labels), 4)
    d = extras["positions"][:, 0] - extras["positions"][:, 1]
    stats = np.column_stack([mass, mean_r, mean_c, spread_r, spread_c, np.hypot(*d.T), where])
    pooled = images[:, 0].reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4)).reshape(len(images), -1)
    acc_stats, acc_pooled = _fit_logistic(stats, labels), _fit_logistic(pooled, labels)
    print(f"logistic regression accuracy: statistics {acc_stats:.3f}, 4x4-pooled {acc_pooled:.3f}")
    assert 0.44 < acc_stats < 0.56 and 0.44 < acc_pooled < 0.56
    dist = np.hypot(*d.T)
    assert np.allclose(np.quantile(dist[labels == 1], [0.1, 0.5, 0.9]),
                       np.quantile(dist[labels == 0], [0.1, 0.5, 0.9]), atol=1.0)  # fmt: skip


def test_load_data_caches_arrays_only(tmp_path):
    cfg = DataConfig.from_dict(
        {"dataset": "samediff", "image_size": 32, "samediff": {"num_images": 300}}
    )
    first = load_data(cfg)
    files = list((tmp_path / "cache" / "procedural").glob("samediff-*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as z:
        assert z["images"].dtype == np.uint8 and z["extra_positions"].shape == (300, 2, 2)
    procedural._MEMORY.clear()
    again = load_data(cfg)  # from the file
    assert np.array_equal(first.train_x.numpy(), again.train_x.numpy())
    assert first.num_classes == 2 and first.crop_pad == 0 and len(first.val_y) == 60


@pytest.mark.parametrize(
    "data,message",
    [
        ({"samediff": {"glyf": 4}}, "data.samediff.glyf: unknown key (did you mean 'glyph'?)"),
        ({"samediff": {"glyph": 9}}, "data.samediff.glyph: expected an integer in 3..8"),
        ({"samediff": {"density": 0.9}}, "data.samediff.density: expected a number in [0.2, 0.8]"),
        ({"samediff": {"min_distance": -1}}, "data.samediff.min_distance: expected a number"),
        ({"dataset": "pathfinder", "samediff": {}}, "data.samediff: settings for samediff, but"),
    ],
)
def test_bad_settings_one_line(data, message):
    with pytest.raises(UserError) as e:
        DataConfig.from_dict({"dataset": "samediff", **data})
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_impossible_settings_one_line():
    with pytest.raises(UserError, match=r"^data.image_size: samediff draws images of 32..128 px, got 16$"):  # fmt: skip
        load_data(DataConfig.from_dict({"dataset": "samediff", "image_size": 16}))
    with pytest.raises(UserError, match=r"^data.samediff.min_distance: 40 px, but two glyphs of 5 px are at most 38.2 px apart at image_size 32; "):  # fmt: skip
        samediff.load({"min_distance": 40, "num_images": 10}, 32)
    with pytest.raises(UserError, match=r"^data.samediff: only \d+ of \d+ tries fit at image_size 32"):  # fmt: skip
        samediff.load({"min_distance": 38, "num_images": 10}, 32)


def test_cli_exits_2_with_one_line(tmp_path, capsys):
    from nas.cli import main

    space = tmp_path / "s.yaml"
    space.write_text(yaml.safe_dump({"data": {"dataset": "samediff", "samediff": {"density": 1}}}))
    assert main(["validate", str(space)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert str(space) in err and "data.samediff.density: expected a number in [0.2, 0.8]" in err
