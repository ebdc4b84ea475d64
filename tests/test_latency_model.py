"""The block-level latency predictor on a synthetic device whose part times are known."""

from __future__ import annotations

import json

import pytest

from nas.errors import UserError
from nas.measure.latency import LatencyProtocol
from nas.measure.latency_fit import candidate_parts, fit_latency_model, predict_candidate
from nas.measure.latency_model import FEATURES, LatencyModel, Part, fit_groups
from nas.space.candidate import Candidate

PROTO = LatencyProtocol(image_size=32)
BASE = {"depths": [1, 1, 1, 1], "num_classes": 10, "image_size": 32, "grn": True, "head_dim": 4}


def _cand(width: int, kernel: int, mixer: str = "static") -> Candidate:
    return Candidate.from_params({**BASE, "width": width, "stage.kernel": kernel,
                                  "stage.mixer": mixer})  # fmt: skip


def _device_ms(part: Part) -> float:
    """The synthetic device: a part's time is a known linear function of its features."""
    macs, in_elems, out_elems, _ = part.features
    return 0.01 + 1e-6 * macs + 2e-7 * in_elems + 1e-7 * out_elems


def _fake_timers():
    calls = {"parts": 0}

    def time_parts(parts):
        calls["parts"] += len(parts)
        return [_device_ms(p) for p in parts]

    def time_whole(cands):
        return [sum(_device_ms(p) for p in candidate_parts(c, PROTO)) for c in cands]

    return time_parts, time_whole, calls


@pytest.fixture(scope="module")
def fitted():
    time_parts, time_whole, calls = _fake_timers()
    fit = [_cand(w, k) for w in (8, 16) for k in (3, 5, 7)]
    check = [_cand(12, 5), _cand(16, 3)]
    model = fit_latency_model(fit, check, proto=PROTO, time_parts=time_parts,
                              time_whole=time_whole, calibrate=4)  # fmt: skip
    return model, fit, time_whole, calls


def test_exact_recovery_on_the_synthetic_device(fitted):
    model, fit, time_whole, calls = fitted
    assert model.alpha == pytest.approx(1.0, abs=1e-9) and model.beta == pytest.approx(
        0.0, abs=1e-9
    )
    # every part was timed once: the six candidates share their stem and head
    assert calls["parts"] == len(model.table) < sum(len(candidate_parts(c, PROTO)) for c in fit)
    for c, whole in zip(fit, time_whole(fit)):
        p = predict_candidate(model, c, PROTO)
        assert p.flags == [] and p.ms == pytest.approx(whole, rel=1e-9)
    held_out = model.meta["held_out"]
    assert held_out["n"] == 2 and held_out["unpredicted"] == 0


def test_a_group_regression_recovers_a_linear_device_exactly():
    """Parts of one group that the table lacks: the least squares of the group recovers a
    device linear in the features, in range."""
    truth = [0.5, 2e-6, 3e-7, 1e-7, 4e-9]  # intercept, then one per feature

    def part(i: int, feats: tuple) -> Part:
        return Part(f"s{i}", "g", "Block", feats)

    def ms(feats):
        return truth[0] + sum(t * f for t, f in zip(truth[1:], feats))

    feats = [(1e5 * (i + 1), 4e3 * (i % 3 + 1), 2e3 * (i % 4 + 1), 1e6 * (i % 2)) for i in range(8)]
    groups = fit_groups([(part(i, f), ms(f)) for i, f in enumerate(feats)])
    model = LatencyModel({}, groups)
    new = (3.5e5, 6e3, 5e3, 5e5)
    pred = model.predict_parts([part(99, new)])
    assert pred.flags == [] and pred.ms == pytest.approx(ms(new), rel=1e-9)
    assert groups["g"]["n"] == 8 and len(groups["g"]["coef"]) == len(FEATURES) + 1


def test_out_of_range_settings_and_unfitted_blocks_are_flagged(fitted):
    model = fitted[0]
    wide = predict_candidate(model, _cand(64, 7), PROTO)  # widths beyond the fitted 8..16
    assert wide.ms is not None and any("outside the fitted" in f for f in wide.flags)
    attention = predict_candidate(model, _cand(8, 3, mixer="dynamic"), PROTO)  # never fitted
    assert attention.ms is None and any("never fitted" in f for f in attention.flags)
    inside = predict_candidate(model, _cand(8, 5), PROTO)
    assert inside.flags == []


def test_saved_and_loaded_models_predict_the_same(fitted, tmp_path):
    model = fitted[0]
    path = tmp_path / "model.json"
    model.save(path)
    data = json.loads(path.read_text())  # plain JSON: nothing that runs code on load
    assert data["format"] == "nas-latency-model/2" and data["table"] == model.table
    loaded = LatencyModel.load(path)
    for c in (_cand(12, 5), _cand(64, 7), _cand(8, 3, mixer="dynamic")):
        assert predict_candidate(loaded, c, PROTO) == predict_candidate(model, c, PROTO)
    path.write_text(json.dumps({**data, "format": "pickle"}))
    with pytest.raises(UserError, match="format: expected 'nas-latency-model/2', got 'pickle'"):
        LatencyModel.load(path)
    path.write_text("{not json")
    with pytest.raises(UserError, match="not JSON"):
        LatencyModel.load(path)


def test_nas_measure_prints_the_prediction_and_refuses_a_bad_model(fitted, tmp_path, capsys):
    import yaml

    from nas.cli.main import main

    model = tmp_path / "model.json"
    fitted[0].save(model)
    cand = tmp_path / "c.yaml"
    cand.write_text(yaml.safe_dump(_cand(12, 5).to_dict()))
    argv = ["measure", str(cand), "--no-latency", "--json", "--predict-latency", str(model)]
    assert main(argv) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = predict_candidate(fitted[0], _cand(12, 5), PROTO).ms
    assert row["latency_pred_ms"] == pytest.approx(expected) and row["latency_ms_p50"] is None
    assert main([*argv[:-1], str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.json: cannot read" in err


def test_a_funnel_screens_by_predicted_latency_before_training(fitted):
    """``--by -latency_pred_ms``: the screen predicts each candidate (the value its trial's row
    carries) and keeps the fastest."""
    from dataclasses import asdict

    from nas.campaign.funnel import _screen_chunk, parse_funnel, select
    from nas.campaign.trial import TrialSpec

    model = fitted[0]
    spec = TrialSpec(campaign="t", mode="survey", data={"dataset": "synthetic"},
                     measure={"proxies": []}, latency_model=model.to_json())  # fmt: skip
    cands = [_cand(16, 7), _cand(8, 3), _cand(12, 5)]
    plans = [{"candidate": c.to_dict(), "seed": 0, "run_key": f"k{i}"} for i, c in enumerate(cands)]
    values = _screen_chunk(asdict(spec), plans, ())
    expected = [predict_candidate(model, c, PROTO).ms for c in cands]
    assert [v["latency_pred_ms"] for v in values] == pytest.approx(expected)
    chosen = select(values, parse_funnel(3, 1, "-latency_pred_ms"))
    assert [c["screen_kept"] for c in chosen] == [
        i == expected.index(min(expected)) for i in range(3)
    ]


def test_held_out_quality_is_plain_json():
    from nas.measure.latency_fit import held_out_quality

    q = held_out_quality([1.0, None, 2.1, 2.9], [1.05, 1.0, 2.0, 3.0])
    assert q["n"] == 3 and q["unpredicted"] == 1 and q["kendall_tau"] == 1.0
    assert q["within_10pct"] == 1.0 and q["median_abs_rel_error"] == pytest.approx(0.05 / 1.05)
    empty = held_out_quality([None], [1.0])
    assert empty["kendall_tau"] is None and empty["within_10pct"] is None
    json.dumps(empty, allow_nan=False)


def _sampled(path: str, n: int, seed: int) -> list[Candidate]:
    import numpy as np

    from nas.space import load_space

    samples, _ = load_space(path).sample_distinct(n, np.random.default_rng(seed))
    return [s.candidate for s in samples]


def _same_parts(candidate: Candidate, proto: LatencyProtocol) -> None:
    from nas.measure.latency_fit import hooked_parts

    analytic = [(p.name, p.args, p.features) for p in candidate_parts(candidate, proto)]
    hooked = [(p.name, p.args, p.features) for p in hooked_parts(candidate, proto)]
    assert analytic == hooked, candidate


@pytest.mark.parametrize(
    "params",
    [
        {
            "stem": "replk",
            "downsample": "replk",
            "block": "replk",
            "norm": "bn",
            "stage.mixer": "mixed",
        },
        {
            "macro": "revcol",
            "columns": 2,
            "block": "container",
            "norm": "bn",
            "stage.mixer": "container",
        },
    ],
)
def test_analytic_parts_equal_the_built_models(params):
    """The enumeration from the Candidate names the parts, shapes, memory formats and MACs the
    deploy model calls (hooks), NHWC and NCHW, batch 1 and 2."""
    cand = Candidate.from_params({**BASE, "width": 16, "head_dim": 8, **params})
    for proto in (PROTO, LatencyProtocol(image_size=32, batch=2, channels_last=False)):
        _same_parts(cand, proto)


@pytest.mark.heavy
def test_analytic_parts_equal_the_built_models_on_sampled_spaces():
    """Samples of spaces/seeds.yaml and spaces/quickstart.yaml, plain and RevCol."""
    cands = _sampled("spaces/seeds.yaml", 6, 3) + _sampled("spaces/quickstart.yaml", 6, 3)
    assert {c.macro for c in cands} == {"plain", "revcol"}
    for i, c in enumerate(cands):
        _same_parts(c, LatencyProtocol(image_size=c.image_size))
        if i % 4 == 0:
            _same_parts(c, LatencyProtocol(image_size=c.image_size, batch=2, channels_last=False))


def test_the_fit_refuses_parts_the_built_model_does_not_call(monkeypatch):
    from nas.measure import latency_fit

    cand = _cand(8, 3)
    parts = candidate_parts(cand, PROTO)
    monkeypatch.setattr(latency_fit, "candidate_parts", lambda c, p: parts[:-1])
    with pytest.raises(RuntimeError, match="analytic enumeration"):
        latency_fit.with_modules(cand, PROTO, parts)


def test_predicting_200_candidates_builds_no_module(fitted, monkeypatch):
    """Prediction works from the Candidate alone: with nn.Module construction (and build_model)
    made to fail, 200 candidates are still predicted, equal to the synthetic device."""
    from torch import nn

    import nas.models.build

    model, _, time_whole, _ = fitted
    cands = [_cand(w, k) for w in range(8, 17, 2) for k in (3, 5, 7)]  # in the fitted range
    expected = time_whole(cands)
    cands += _sampled("spaces/seeds.yaml", 100, 1) + _sampled(
        "spaces/quickstart.yaml", 200 - 115, 1
    )

    def refuse(*args, **kwargs):
        raise AssertionError("a module was built to predict latency")

    monkeypatch.setattr(nn.Module, "__init__", refuse)
    monkeypatch.setattr(nas.models.build, "build_model", refuse)
    preds = [predict_candidate(model, c, PROTO) for c in cands]
    assert len(preds) == 200
    assert [p.ms for p in preds[:15]] == pytest.approx(expected, rel=1e-9)
    assert all(p.ms is not None or p.flags for p in preds)  # a value, or why there is none
