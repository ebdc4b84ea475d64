"""nas.train.pathfinder: determinism, balance, no shortcuts, labels checked independently, cache,
one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from nas.errors import UserError
from nas.train import pathfinder
from nas.train.data import DataConfig
from tests.test_procedural import assert_no_shortcut, no_shared_cache  # noqa: F401


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
    assert_no_shortcut(images, labels, stats, np.hypot(*d.T), atol=1.5)


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
