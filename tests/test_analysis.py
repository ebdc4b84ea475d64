"""The space's ``measure:`` section in a campaign trial: zero-cost proxies at init (the same values
as ``nas measure --proxies``, training unchanged by them) and the ERF of the trained network."""

from __future__ import annotations

import json
import math

import pytest
import torch

from nas.campaign.analysis import erf_columns, init_proxies, measure_settings
from nas.campaign.trial import TrialSpec, run_trial
from nas.errors import SpaceError, UserError
from nas.space.candidate import Candidate, load_candidate
from nas.space.parse import parse_space
from nas.vocab import ERF_COLUMNS, PROXIES
from tests.conftest import PRESETS

DATA = {"dataset": "digits", "limit": 300}


def _small() -> Candidate:
    return Candidate.from_params(
        # drop_path: the proxies' training-mode passes draw from the global RNG
        {"width": 8, "depths": [1, 1, 1, 1], "image_size": 32, "num_classes": 10, "drop_path": 0.2},
        base=load_candidate(PRESETS / "convnextv2_atto.yaml"),
    )


def _trial(measure: dict) -> dict:
    spec = TrialSpec(campaign="t", mode="survey", data=DATA, train={"epochs": 1, "batch_size": 64},
                     latency_inline=False, measure=measure)  # fmt: skip
    return run_trial(spec, _small(), trial_id="one", seed=3)


def test_a_trial_records_proxies_and_erf_and_trains_as_without_them():
    plain = _trial({"proxies": False})
    full = _trial({"erf": True, "erf_images": 4})
    assert plain["status"] == full["status"] == "ok"
    assert not any(p in plain for p in PROXIES) and "erf_r20" not in plain
    # training is bit for bit the same (the trainer seeds itself; the proxies fork the RNG)
    learned = ("train_loss", "val_loss", "val_acc")
    assert [[h[k] for k in learned] for h in full["history"]] == [
        [h[k] for k in learned] for h in plain["history"]
    ]
    assert full["proxy_errors"] is None and all(math.isfinite(full[p]) for p in PROXIES)
    # the values a campaign records are those of nas measure --proxies (same seed, data, model)
    from nas.models.build import build_model
    from nas.train.data import DataConfig, load_data

    data = load_data(DataConfig.from_dict({**DATA, "image_size": 32}, source="data"))
    torch.manual_seed(3)
    again = init_proxies(build_model(_small()), data, measure_settings({}), seed=3, num_classes=10)
    assert all(again[p] == full[p] for p in PROXIES)
    assert all(0 < full[c] <= 1 for c in ERF_COLUMNS) and full["erf_images"] == 4
    assert full["erf_r20"] <= full["erf_r30"] <= full["erf_r50"] <= full["erf_r99"]
    side = len(full["erf_map"])
    assert side == 32 and all(len(r) == side for r in full["erf_map"]) and full["erf_error"] is None
    json.dumps(full)  # the row (map included) travels as JSON


def test_an_erf_that_cannot_be_computed_is_nan_with_its_reason():
    class NoFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

    from nas.train.data import DataConfig, load_data

    data = load_data(DataConfig.from_dict({**DATA, "image_size": 32}, source="data"))
    out = erf_columns(NoFeatures(), data, measure_settings({"erf": True}))
    assert all(math.isnan(out[c]) for c in ERF_COLUMNS)
    assert "forward_features" in out["erf_error"]
    assert erf_columns(NoFeatures(), data, measure_settings({})) == {}  # off by default


@pytest.mark.parametrize(
    "section, expected",
    [
        ({"proxies": ["synflow", "zen"]}, "measure.proxies: expected a list of zero-cost proxies"),
        ({"proxy_batch": 1}, "measure.proxy_batch: expected an integer >= 2"),
        ({"erf": "yes"}, "measure.erf: expected true or false"),
        ({"erf_imgs": 3}, "measure.erf_imgs: unknown key"),
    ],
)
def test_bad_measure_settings_are_one_line(section, expected):
    data = {"base": str(PRESETS / "quickstart_base.yaml"), "measure": section}
    with pytest.raises(SpaceError) as e:
        parse_space(data, source="s.yaml")
    assert expected in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="measure"):
        measure_settings(section)


def test_measure_settings_defaults_and_spellings():
    assert measure_settings({})["proxies"] == PROXIES and not measure_settings({})["erf"]
    assert measure_settings({"proxies": True})["proxies"] == PROXIES
    assert measure_settings({"proxies": []})["proxies"] == ()
    assert measure_settings({"proxies": ["snip", "snip"]})["proxies"] == ("snip",)
