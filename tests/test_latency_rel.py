"""Relative latency (``latency_rel``): a candidate timed in the same rounds as a reference."""

from __future__ import annotations

import math

import pytest
from torch import nn

from nas.measure.latency import (
    LatencyProtocol,
    _summary,
    measure_latencies,
    relative_summary,
    time_rounds,
)
from tests.conftest import ROOT

# recorded round times (ms) of a candidate and the reference, 5 rounds timed side by side
CAND = [[4.0, 4.4, 4.2], [6.0, 6.6, 6.3], [4.1, 4.0, 4.3], [4.4, 4.2, 4.6], [8.0, 8.2, 8.8]]
REF = [[2.0, 2.1, 2.2], [3.0, 3.1, 3.0], [2.0, 2.0, 2.1], [2.2, 2.1, 2.3], [4.0, 4.1, 4.0]]


def test_ratio_is_the_median_of_per_round_ratios_of_round_medians():
    # by hand: round medians 4.2/2.1, 6.3/3.0, 4.1/2.0, 4.4/2.2, 8.2/4.0
    ratios = sorted([2.0, 2.1, 2.05, 2.0, 2.05])  # 2.0, 2.0, 2.05, 2.05, 2.1
    r = relative_summary(CAND, REF)
    assert r["latency_rel"] == pytest.approx(ratios[2])  # 2.05
    # 5 rounds: the interval is the smallest and the largest ratio (93.75% coverage)
    assert r["latency_rel_ci_low"] == pytest.approx(2.0)
    assert r["latency_rel_ci_high"] == pytest.approx(2.1)
    assert r["latency_ref_ms_p50"] == pytest.approx(2.2)  # median of 2.1, 3.0, 2.0, 2.2, 4.0
    with pytest.raises(ValueError, match="rounds: 4 against the reference's 5"):
        relative_summary(CAND[:4], REF)


def test_a_slowdown_of_both_models_in_a_round_leaves_latency_rel_and_moves_raw_latency():
    slow = {0, 2, 3}  # three of five rounds: enough to move the median of round medians
    cand = [[t * (3.0 if i in slow else 1.0) for t in r] for i, r in enumerate(CAND)]
    ref = [[t * (3.0 if i in slow else 1.0) for t in r] for i, r in enumerate(REF)]
    before, after = relative_summary(CAND, REF), relative_summary(cand, ref)
    for key in ("latency_rel", "latency_rel_ci_low", "latency_rel_ci_high"):
        assert after[key] == pytest.approx(before[key])
    assert _summary(CAND)["latency_ms_p50"] == pytest.approx(4.4)
    # round medians 12.6, 6.3, 12.3, 13.2, 8.2: the raw figure moved to 4.1 x 3
    assert _summary(cand)["latency_ms_p50"] == pytest.approx(12.3)


class _Machine:
    """A fake device: each model's run takes a fixed time, times ``factor`` during a slow round.
    A model's calls are counted; with warm-up and probe done, its round r is its calls
    [offset + r * iters, offset + (r + 1) * iters)."""

    OFFSET = 20 + 3  # warm-up (settled at 20 runs with warmup_s=0) + the 3 probe runs

    def __init__(self, base: dict[str, float], slow_rounds: set[int], proto: LatencyProtocol):
        self.base, self.slow, self.calls = base, slow_rounds, dict.fromkeys(base, 0)
        self.iters = {
            k: max(proto.timed_iters, math.ceil(proto.min_round_s / (ms / 1e3)))
            for k, ms in base.items()
        }

    def timer(self, name: str):
        def timed() -> float:
            n, self.calls[name] = self.calls[name], self.calls[name] + 1
            r = (n - self.OFFSET) // self.iters[name] if n >= self.OFFSET else -1
            return self.base[name] * (3.0 if r in self.slow else 1.0)

        return timed


def test_time_rounds_with_a_machine_slowed_in_some_rounds():
    """The round loop itself: a slowdown of the machine in three rounds falls on both models of
    those rounds, so latency_rel is the undisturbed ratio while the raw median triples."""
    proto = LatencyProtocol(warmup_s=0.0, rounds=5, max_rounds=5)
    results = {}
    for slow in (set(), {0, 2, 3}):
        machine = _Machine({"cand": 5.0, "ref": 2.0}, slow, proto)
        timers = {k: machine.timer(k) for k in ("cand", "ref")}
        rounds, warmup = time_rounds(timers, proto, reference="ref")
        assert warmup == {"cand": 20, "ref": 20}  # the machine's round schedule relies on it
        slowed = [i for i, r in enumerate(rounds["ref"]) if set(r) == {6.0}]
        assert slowed == sorted(slow) and len(rounds["cand"]) == 5
        results[bool(slow)] = (_summary(rounds["cand"]), relative_summary(*rounds.values()))
    (raw0, rel0), (raw1, rel1) = results[False], results[True]
    assert rel0["latency_rel"] == rel1["latency_rel"] == 2.5
    assert raw0["latency_ms_p50"] == 5.0 and raw1["latency_ms_p50"] == 15.0


def test_measure_latencies_with_a_reference_adds_the_relative_columns():
    small = nn.Conv2d(3, 8, 3)
    big = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 32, 32, 3, padding=1) for i in range(3)])
    proto = LatencyProtocol(image_size=16, warmup_s=0.05, warmup_max_s=0.3, min_round_s=0.01)
    r = measure_latencies({"big": big, "small": small}, proto, reference="small")
    big_r = r["big"]
    assert big_r["latency_rel_ci_low"] <= big_r["latency_rel"] <= big_r["latency_rel_ci_high"]
    assert big_r["latency_ref_ms_p50"] == r["small"]["latency_ms_p50"]
    assert big_r["latency_rel"] > 1  # three 32-channel convs against one 8-channel conv
    assert "latency_rel" not in r["small"]


def test_measure_candidate_times_the_reference_at_the_candidate_input():
    from nas.measure import measure_candidate
    from nas.space.candidate import Candidate

    small = {"depths": [1, 1, 1, 1], "width": 8, "num_classes": 10}
    c = Candidate.from_params({**small, "image_size": 32, "in_chans": 1})
    ref = Candidate.from_params({**small, "width": 16, "image_size": 64})
    proto = LatencyProtocol(image_size=32, warmup_s=0.0, timed_iters=3, min_round_s=0.0)
    row = measure_candidate(c, proto=proto, memory=False, reference=ref)
    assert row["status"] == "ok", row["error"]
    expected = Candidate.from_params({"image_size": 32, "in_chans": 1}, base=ref).id
    assert row["latency_ref_id"] == expected != ref.id
    assert row["latency_rel"] > 0 and row["latency_ref_ms_p50"] > 0
    plain = measure_candidate(c, proto=proto, memory=False)
    assert plain["latency_rel"] is None and plain["latency_ref_id"] is None


def test_an_inline_trial_times_the_reference_and_a_latency_rel_constraint_holds_it_back():
    """latency_rel is a cost column: a constraint on it is checked before training."""
    from nas.campaign.trial import TrialSpec, measurement_settings, run_trial
    from nas.space.candidate import Candidate

    small = {"depths": [1, 1, 1, 1], "width": 8, "num_classes": 10, "image_size": 32}
    c = Candidate.from_params(small)
    ref = Candidate.from_params({**small, "width": 16})
    spec = TrialSpec(
        campaign="t",
        mode="survey",
        data={"dataset": "digits", "limit": 200},
        train={"epochs": 1},
        constraints={"latency_rel": (None, 1e-3)},  # no candidate runs 1000x faster
        latency={"timed_iters": 3, "warmup_s": 0.0, "min_round_s": 0.0},
        latency_reference=ref.to_dict(),
        latency_reference_key=ref.id,
    )
    row = run_trial(spec, c, trial_id="one", seed=0)
    assert row["status"] == "infeasible" and row["epochs"] == 0, row["reason"]
    assert row["reason"].startswith("latency_rel=") and row["latency_source"] == "inline"
    assert row["latency_ref_id"] == ref.id and row["latency_rel"] > 0
    assert measurement_settings(spec)["latency.reference"] == ref.id
    unnamed = TrialSpec(campaign="t", mode="survey", latency_reference=ref.to_dict())
    assert "latency.reference" not in measurement_settings(unnamed)  # the default adds no key


def test_latency_rel_objective_needs_a_reference(tmp_path, capsys):
    from nas.cli.main import main

    space = tmp_path / "space.yaml"
    text = (ROOT / "spaces" / "quickstart.yaml").read_text()
    base = ROOT / "spaces" / "presets" / "convnextv2_atto.yaml"
    text = text.replace("base: presets/convnextv2_atto.yaml", f"base: {base}")
    space.write_text(text.replace("latency_ms_p50: min", "latency_rel: min"))
    runner = tmp_path / "runner.yaml"
    runner.write_text("latency: {reference: off}\n")
    argv = ["survey", str(space), "--name", "s", "--runner", str(runner)]
    assert main([*argv, "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert "latency_rel is an objective or constraint" in err and "latency.reference: off" in err
    assert not (tmp_path / "results").exists()
    # a funnel by predicted latency needs a runner that predicts it
    space.write_text(text)
    funnel = ["--prescreen", "4", "--keep", "2", "--by", "-latency_pred_ms"]
    assert main(["survey", str(space), "--name", "s", *funnel, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "latency_pred_ms is an objective or constraint, but runner" in err
    assert "does not predict latency" in err and err.count("\n") == 1
