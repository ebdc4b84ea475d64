"""nas.train.pathfinder: determinism, balance, no shortcuts, labels checked independently, cache,
one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from nas.errors import UserError
from nas.train import pathfinder, procedural
from nas.train.data import DataConfig, load_data

SMALL = {**pathfinder.DEFAULTS, "num_images": 400}


@pytest.fixture(autouse=True)
def _no_shared_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE", str(tmp_path / "cache"))
    procedural._MEMORY.clear()


def test_same_seed_same_images_bit_identical():
    a = pathfinder.generate(SMALL, 32)
    b = pathfinder.generate(dict(SMALL), 32)
    assert a[0].dtype == np.uint8 and a[0].shape == (400, 1, 32, 32)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].tobytes() == b[0].tobytes()
    other = pathfinder.generate({**SMALL, "seed": 1}, 32)
    assert not np.array_equal(a[0], other[0])


@pytest.mark.parametrize("n", [400, 401])
def test_labels_balanced(n):
    _, labels, _ = pathfinder.generate({**SMALL, "num_images": n}, 32)
    assert labels.dtype == np.int64 and set(np.unique(labels)) == {0, 1}
    assert abs(int(labels.sum()) - (n - int(labels.sum()))) <= 1


def _components_say_joined(image, markers, gap: int) -> bool:
    """Independent of the generator's geometry: close the dash gaps by dilating the ink, label the
    8-connected components and ask whether both marker centres are in one."""
    from scipy import ndimage

    r = -(-gap // 2)
    closed = ndimage.binary_dilation(image > 0, structure=np.ones((2 * r + 1,) * 2, bool))
    comp, _ = ndimage.label(closed, structure=np.ones((3, 3), bool))
    (r0, c0), (r1, c1) = markers
    assert comp[r0, c0] > 0 and comp[r1, c1] > 0  # both markers are drawn
    return bool(comp[r0, c0] == comp[r1, c1])


@pytest.mark.parametrize(
    "settings,size",
    [
        ({}, 32),
        ({"curve_length": 10, "distractors": 0, "gap": 1, "dash": 2}, 32),
        pytest.param(
            {"curve_length": 24, "distractors": 2, "gap": 3, "marker_radius": 2},
            64,
            marks=pytest.mark.heavy,
        ),
    ],
)
def test_every_label_matches_connected_components(settings, size):
    s = {**pathfinder.DEFAULTS, "num_images": 200, **settings}
    images, labels, extras = pathfinder.generate(s, size)
    said = [
        _components_say_joined(images[i, 0], extras["markers"][i], s["gap"]) for i in range(200)
    ]
    assert np.array_equal(np.array(said, dtype=np.int64), labels)


def _fit_logistic(features, labels) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(features)
    n = len(labels) * 2 // 3
    clf = LogisticRegression(max_iter=2000).fit(x[:n], labels[:n])
    return float(clf.score(x[n:], labels[n:]))


@pytest.mark.heavy
def test_no_shortcut_in_simple_statistics_or_pooled_image():
    """A linear classifier on ink, ink spread, marker distance and position, or the 4x4-pooled image
    stays near chance (held-out accuracy of 1,000 images; chance 0.5, 2 sd ~ 0.03)."""
    images, labels, extras = pathfinder.generate({**pathfinder.DEFAULTS, "num_images": 3000}, 32)
    ink = images[:, 0] > 0
    grid = np.arange(32)
    mass = ink.sum(axis=(1, 2))
    mean_r = (ink.sum(axis=2) * grid).sum(axis=1) / mass
    mean_c = (ink.sum(axis=1) * grid).sum(axis=1) / mass
    d = extras["markers"][:, 0] - extras["markers"][:, 1]
    # where the markers lie: their midpoint, its and each marker's distance from the centre
    mid = extras["markers"].mean(axis=1) - 15.5
    radii = np.hypot(*np.moveaxis(extras["markers"] - 15.5, -1, 0))  # (N, 2)
    stats = np.column_stack(
        [mass, mean_r, mean_c, np.abs(d).max(axis=1), np.hypot(*d.T), mid, np.hypot(*mid.T)]
        + [np.sort(radii, axis=1)]
    )
    pooled = images[:, 0].reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4)).reshape(len(images), -1)
    acc_stats, acc_pooled = _fit_logistic(stats, labels), _fit_logistic(pooled, labels)
    print(f"logistic regression accuracy: statistics {acc_stats:.3f}, 4x4-pooled {acc_pooled:.3f}")
    assert 0.44 < acc_stats < 0.56 and 0.44 < acc_pooled < 0.56
    # the marker distance has one distribution in both classes (not only the same mean)
    dist = np.hypot(*d.T)
    assert np.allclose(np.quantile(dist[labels == 1], [0.1, 0.5, 0.9]),
                       np.quantile(dist[labels == 0], [0.1, 0.5, 0.9]), atol=1.5)  # fmt: skip


def test_load_data_caches_arrays_only(tmp_path):
    cfg = DataConfig.from_dict(
        {"dataset": "pathfinder", "image_size": 32, "pathfinder": {"num_images": 300}}
    )
    first = load_data(cfg)
    files = list((tmp_path / "cache" / "procedural").glob("pathfinder-*.npz"))
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


@pytest.mark.parametrize(
    "data,message",
    [
        (
            {"pathfinder": {"curve_lenght": 9}},
            "data.pathfinder.curve_lenght: unknown key (did you mean 'curve_length'?)",
        ),  # fmt: skip
        ({"pathfinder": {"gap": -1}}, "data.pathfinder.gap: expected an integer in 0..16"),
        ({"pathfinder": {"turn": "sharp"}}, "data.pathfinder.turn: expected a number in [0, 1]"),
        ({"pathfinder": [1]}, "data.pathfinder: expected a mapping with keys from"),
        (
            {"dataset": "digits", "pathfinder": {}},
            "data.pathfinder: settings for pathfinder, but data.dataset is digits",
        ),  # fmt: skip
    ],
)
def test_bad_settings_one_line(data, message):
    with pytest.raises(UserError) as e:
        DataConfig.from_dict({"dataset": "pathfinder", **data})
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_impossible_settings_one_line():
    with pytest.raises(UserError, match=r"^data.image_size: pathfinder draws images of 32..128 px, got 16$"):  # fmt: skip
        DataConfig.from_dict({"dataset": "pathfinder", "image_size": 16})
    with pytest.raises(UserError, match=r"^data.pathfinder: only \d+ of \d+ tries fit at image_size 32"):  # fmt: skip
        pathfinder.load({"curve_length": 60, "num_images": 10}, 32)


def test_space_file_names_the_inner_key(tmp_path):
    from nas.space import load_space

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"data": {"dataset": "pathfinder", "pathfinder": {"dash": 0}}}))
    with pytest.raises(UserError) as e:
        load_space(f)
    assert "data.pathfinder.dash" in str(e.value) and str(f) in str(e.value)
    assert "expected an integer in 1..64" in str(e.value)


def test_an_image_size_it_cannot_draw_is_refused_when_the_space_loads(tmp_path, capsys):
    """Checked with the space (``nas validate``: exit 2, one line), not trial by trial."""
    from nas.cli import main

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"data": {"dataset": "pathfinder", "image_size": 144}}))
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(f) in err
    assert "data.image_size: pathfinder draws images of 32..128 px, got 144" in err
