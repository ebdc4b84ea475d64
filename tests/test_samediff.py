"""nas.train.samediff: determinism, balance, no shortcuts, labels checked independently, cache,
one-line errors (the CLI's exit 2 included)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from nas.errors import UserError
from nas.train import samediff
from nas.train.data import DataConfig
from tests.test_procedural import assert_no_shortcut, no_shared_cache  # noqa: F401


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
    assert_no_shortcut(images, labels, stats, np.hypot(*d.T), atol=1.0)


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
        DataConfig.from_dict({"dataset": "samediff", "image_size": 16})
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
