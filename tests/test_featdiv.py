"""Feature diversity (ConvNeXt V2's channel cosine distance): equal to a hand computation on a tiny
fixed network, 0 for constant channels, the stages' real outputs, and the trial / CLI columns."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nas.campaign.analysis import featdiv_columns, measure_settings
from nas.cli import main
from nas.errors import SpaceError
from nas.measure.featdiv import feature_diversity, stage_diversity, stage_features
from nas.models.build import build_model
from nas.space.candidate import Candidate, load_candidate
from nas.space.parse import parse_space
from nas.vocab import FEATDIV_COLUMNS
from tests.conftest import PRESETS


def _fixed_net() -> nn.Conv2d:
    """1 -> 3 channels, 1x1: x, 2x + 1 and -x + 0.5 (fixed weights and biases)."""
    conv = nn.Conv2d(1, 3, 1, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64).view(3, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64))
    return conv


def _by_hand(maps: np.ndarray) -> float:
    """(B, C, H, W) -> mean over channel pairs i < j of 1 - cos, plain Python sums."""
    vectors = [maps[:, c].ravel().tolist() for c in range(maps.shape[1])]
    dists = []
    for a, b in itertools.combinations(vectors, 2):
        dot = sum(x * y for x, y in zip(a, b))
        na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
        dists.append(1.0 - dot / (na * nb))
    return sum(dists) / len(dists)


def test_equals_a_hand_computation_on_a_tiny_fixed_network():
    x = torch.tensor(
        [[[[0.5, -1.0], [2.0, 0.0]]], [[[1.5, 3.0], [-0.5, 1.0]]]], dtype=torch.float64
    )
    maps = _fixed_net()(x).detach()
    want = _by_hand(maps.numpy())
    assert feature_diversity(maps) == pytest.approx(want, rel=1e-12)
    # channel 0 and channel 2 + 0.5 offset: far from collapsed, and the value is not trivial
    assert 0.3 < want < 2.0


def test_constant_channels_give_zero():
    maps = torch.ones(4, 3, 5, 5) * torch.tensor([2.0, -1.0, 0.0]).view(1, 3, 1, 1)
    assert feature_diversity(maps) == 0.0  # all constant (one of them dead): collapsed
    assert feature_diversity(torch.zeros(2, 4, 3, 3)) == 0.0  # an all-zero stage: 0, not NaN
    # a dead and a constant channel beside two live ones: only the live pair counts
    live = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    mixed = torch.cat([live, torch.zeros(2, 1, 4, 4, dtype=torch.float64),
                       torch.full((2, 1, 4, 4), 3.0, dtype=torch.float64)], dim=1)  # fmt: skip
    live_pair = _by_hand(live.numpy())
    assert feature_diversity(mixed) == pytest.approx(live_pair / 6, rel=1e-12)  # 1 of 6 pairs
    assert feature_diversity(torch.randn(3, 1, 4, 4)) == 0.0  # a single channel has no pair


def test_identical_channels_are_collapsed_and_orthogonal_ones_are_not():
    a = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    assert feature_diversity(torch.cat([a, 3 * a, 0.5 * a], dim=1)) == pytest.approx(0, abs=1e-12)
    ortho = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    ortho[0, 0, 0, 0] = ortho[0, 1, 1, 1] = 1.0
    assert feature_diversity(ortho) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        feature_diversity(torch.randn(3, 4))


def _tiny(macro: str = "plain") -> Candidate:
    params = {"width": 8, "depths": [1, 1, 1, 1], "image_size": 32, "num_classes": 10}
    if macro == "revcol":
        params |= {"macro": "revcol", "columns": 2}
    return Candidate.from_params(params, base=load_candidate(PRESETS / "convnextv2_atto.yaml"))


def test_stage_features_are_the_stages_outputs():
    torch.manual_seed(0)
    model = build_model(_tiny()).train()
    x = torch.randn(3, 3, 32, 32)
    feats = stage_features(model, x)
    assert model.training  # left as it was
    model.eval()
    with torch.no_grad():  # the stages by hand
        h, want = model.stem(x), []
        for transition, stage in zip(model.transitions, model.stages):
            h = stage(transition(h))
            want.append(h)
    assert [f.shape[1] for f in feats] == [8, 16, 32, 64]
    for f, w in zip(feats, want):
        torch.testing.assert_close(f, w)
    div = stage_diversity(model, x)
    assert list(div) == list(FEATDIV_COLUMNS)
    assert div["featdiv_s2"] == pytest.approx(feature_diversity(want[2]))


def test_revcol_stage_features_are_the_last_columns_levels():
    torch.manual_seed(0)
    model = build_model(_tiny("revcol"))
    x = torch.randn(2, 3, 32, 32)
    feats = stage_features(model, x)
    model.eval()
    with torch.no_grad():
        prev = None
        for column in model.columns:
            prev = column(model.stem(x), prev)
    assert len(feats) == 4
    for f, w in zip(feats, prev):
        torch.testing.assert_close(f, w)


def test_trial_columns_and_the_measure_section():
    from nas.train.data import DataConfig, load_data

    data = load_data(DataConfig.from_dict({"dataset": "digits", "limit": 300, "image_size": 32},
                                          source="data"))  # fmt: skip
    torch.manual_seed(0)
    model = build_model(_tiny())
    assert featdiv_columns(model, data, measure_settings({})) == {}  # off by default
    out = featdiv_columns(model, data, measure_settings({"feature_diversity": True,
                                                         "featdiv_images": 5}))  # fmt: skip
    images, _ = next(data.batches("val", 5, generator=None, device="cpu"))
    assert out["featdiv_error"] is None and out["featdiv_images"] == 5
    assert {k: out[k] for k in FEATDIV_COLUMNS} == stage_diversity(model, images)
    with pytest.raises(SpaceError, match=r"measure\.feature_diversity: expected true or false"):
        parse_space({"measure": {"feature_diversity": "yes"}}, source="s.yaml")


def test_nas_measure_feature_diversity(capsys):
    target = str(PRESETS / "quickstart_base.yaml")
    assert main(["measure", target, "--no-latency", "--feature-diversity", "--images", "4"]) == 0
    out = capsys.readouterr().out
    values = [float(out.split(f"{c} ")[1].split()[0]) for c in FEATDIV_COLUMNS]
    assert all(0 <= v <= 2 for v in values)
    assert main(["measure", target, "--no-latency", "--weights", "w.pt"]) == 2
    assert "--weights: only --feature-diversity" in capsys.readouterr().err


def test_report_section_means_per_axis_value_and_plots_each_axis():
    from nas.report.featdiv import featdiv_section, featdiv_table
    from tests.test_report_cli import base_row

    rows = [
        base_row(
            i,
            featdiv_images=8,
            **{"pretrain.method": "fcmae" if i < 2 else "none"},
            **{c: 0.1 * i + s for s, c in enumerate(FEATDIV_COLUMNS)},
        )  # fmt: skip
        for i in range(4)
    ]
    rows.append(base_row(4, status="error", val_acc=None, featdiv_s0=9.0))  # not trained: left out
    t = featdiv_table(pd.DataFrame(rows)).set_index(["axis", "value"])
    # param.width: 32 at even i (0, 2), 16 at odd i (1, 3)
    assert t.loc[("param.width", "32"), "featdiv_s0"] == pytest.approx(0.1)
    assert t.loc[("param.width", "16"), "featdiv_s3"] == pytest.approx(3.2)
    assert t.loc[("pretrain.method", "fcmae"), "featdiv_s1"] == pytest.approx(1.05)
    assert t.loc[("pretrain.method", "none"), "n"] == 2
    section = featdiv_section(pd.DataFrame(rows))
    assert [f.name for f in section.figures] == ["featdiv_param_width", "featdiv_pretrain_method"]
    assert "8 validation images" in section.text
    assert "feature_diversity: true" in featdiv_section(pd.DataFrame(rows[:1])).unavailable


def test_a_trained_trial_records_its_feature_diversity():
    from nas.campaign.trial import TrialSpec, run_trial

    spec = TrialSpec(campaign="t", mode="survey", data={"dataset": "digits", "limit": 300},
                     train={"epochs": 1, "batch_size": 64}, latency_inline=False,
                     measure={"proxies": False, "feature_diversity": True, "featdiv_images": 6})  # fmt: skip
    row = run_trial(spec, _tiny(), trial_id="one", seed=0)
    assert row["status"] == "ok" and row["featdiv_error"] is None and row["featdiv_images"] == 6
    assert all(0 <= row[c] <= 2 for c in FEATDIV_COLUMNS)
