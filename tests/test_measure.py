"""Measurement: fvcore MACs (with the SDPA handle) against hand counts and FlopCounterMode; the
analytic fast path against real models; latency protocol, cache and provenance; error rows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import nas
from nas.errors import UserError
from nas.measure import (
    ROW_KEYS,
    LatencyProtocol,
    count_macs,
    fast_cost,
    flop_counter_macs,
    measure_candidate,
    measure_latency,
)
from nas.models.blocks import AffinityMixer
from nas.space.candidate import Candidate, load_candidate
from tests.conftest import PRESETS, ROOT


def test_hand_counted_conv_and_depthwise():
    x = torch.randn(1, 16, 20, 20)
    conv = nn.Conv2d(16, 32, 3, padding=1)
    assert count_macs(conv, x)[0] == 20 * 20 * 32 * 16 * 9 == flop_counter_macs(conv, x)
    dw = nn.Conv2d(16, 16, 7, padding=3, groups=16)
    assert count_macs(dw, x)[0] == 20 * 20 * 16 * 49 == flop_counter_macs(dw, x)


def test_hand_counted_attention_layer():
    dim, hw, head_dim = 32, 8, 8
    mixer = AffinityMixer(dim, mode="dynamic", head_dim=head_dim)  # qkv 1x1, SDPA, proj 1x1
    x = torch.randn(1, dim, hw, hw)
    n = hw * hw
    heads = dim // head_dim
    expected = n * dim * 3 * dim + heads * n * n * (head_dim + head_dim) + n * dim * dim
    macs, uncounted = count_macs(mixer, x)
    assert macs == expected
    assert "scaled_dot_product_attention" not in uncounted  # our handle counts it
    assert flop_counter_macs(mixer, x) == expected


def test_atto_params_and_macs_at_224():
    c = nas.load_candidate(PRESETS / "convnextv2_atto.yaml")
    model = nas.build_model(c)
    macs, uncounted = count_macs(model, torch.randn(1, 3, 224, 224))
    assert sum(p.numel() for p in model.parameters()) == 3_708_400
    assert abs(macs - 0.55e9) / 0.55e9 < 0.01
    assert {"gelu", "sqrt"} <= set(uncounted)  # GRN's norm and GELU stay uncounted
    assert fast_cost(c) == {
        "params": 3_708_400,
        "params_deploy": 3_708_400,
        "macs": macs,
        "macs_deploy": macs,
    }


def test_deploy_form_is_cheaper_only_with_reparam_branches():
    rep = fast_cost(nas.load_candidate(PRESETS / "replknet_31b.yaml"))
    assert rep["params_deploy"] == 79_527_272 and rep["params"] == 79_864_168
    assert rep["macs_deploy"] < rep["macs"]
    assert (
        abs(rep["macs"] - 15.514e9) / 15.514e9 < 0.01
    )  # fvcore 15.514 G (training form, seeds.md)
    assert abs(rep["macs_deploy"] - 15.424e9) / 15.424e9 < 0.01
    for name in ("convnextv2_tiny", "convnext_tiny", "container_light", "revcol_t"):
        cost = fast_cost(nas.load_candidate(PRESETS / f"{name}.yaml"))
        assert (cost["params_deploy"], cost["macs_deploy"]) == (cost["params"], cost["macs"])


def test_published_macs():
    # fvcore GFLOPs (= MACs) at 224 from seeds.md: ConvNeXt V2-T 4.466, Container-Light 3.856, RevCol-T 4.537
    for name, gmacs in (
        ("convnextv2_tiny", 4.466),
        ("container_light", 3.856),
        ("revcol_t", 4.537),
    ):
        macs = fast_cost(nas.load_candidate(PRESETS / f"{name}.yaml"))["macs"]
        assert abs(macs / 1e9 - gmacs) / gmacs < 0.01, (name, macs)


def _seeds(n, seed):
    space = nas.load_space(ROOT / "spaces" / "seeds.yaml")
    return [s.candidate for s in space.sample_distinct(n, np.random.default_rng(seed))[0]]


@pytest.mark.parametrize("block", ["convnext", "replk", "container"])
def test_container_mixer_costs_agree_fvcore_analytic_and_parameter_count(block):
    c = nas.Candidate(
        block=block, depths=(1, 1, 1, 1), widths=(16, 32, 64, 64), image_size=64, head_dim=16,
        mixers=("static", "container", "container", "container"), num_classes=10,
    )  # fmt: skip
    model = nas.build_model(c)
    x = torch.randn(1, 3, 64, 64)
    fast = fast_cost(c)
    assert fast["params"] == sum(p.numel() for p in model.parameters())
    assert fast["macs"] == count_macs(model, x)[0] == flop_counter_macs(model, x)
    deploy = nas.reparameterize(model)
    assert fast["params_deploy"] == sum(p.numel() for p in deploy.parameters())
    assert fast["macs_deploy"] == count_macs(deploy, x)[0]


@pytest.mark.heavy
def test_fast_path_equals_full_measurement_on_30_sampled():
    for c in _seeds(30, seed=3):
        torch.manual_seed(0)
        model = nas.build_model(c)
        deploy = nas.reparameterize(model)
        x = torch.randn(1, 3, c.image_size, c.image_size)
        fast = fast_cost(c)
        assert fast["params"] == sum(p.numel() for p in model.parameters()), c.id
        assert fast["params_deploy"] == sum(p.numel() for p in deploy.parameters()), c.id
        for key, m in (("macs", model), ("macs_deploy", deploy)):
            full = count_macs(m, x)[0]
            assert abs(fast[key] - full) <= 0.01 * full, (c.id, key, fast[key], full)


def test_flop_counter_cross_check_on_plain_candidates():
    checked = 0
    for c in _seeds(12, seed=5):
        if c.macro != "plain":  # FlopCounterMode does not see nearest upsampling (RevCol's up path)
            continue
        model = nas.build_model(c)
        x = torch.randn(1, 3, c.image_size, c.image_size)
        assert flop_counter_macs(model, x) == count_macs(model, x)[0], c.id
        checked += 1
    assert checked >= 3


def test_measurement_row_has_every_key_and_provenance():
    c = nas.Candidate(depths=(1, 1, 1, 1), widths=(8, 16, 32, 64), num_classes=10, image_size=32)
    proto = LatencyProtocol(image_size=32, warmup_s=0.2, timed_iters=30)
    row = measure_candidate(c, proto=proto, throughput_batch=4)
    assert set(ROW_KEYS) <= set(row)
    assert row["status"] == "ok" and row["candidate_id"] == c.id
    assert row["device"] == "cpu" and row["threads"] == 1 and row["dtype"] == "float32"
    assert row["torch_version"] == torch.__version__
    rounds = row["latency_rounds"]
    assert row["warmup_iters"] >= 10 and row["timed_iters"] >= 30 * rounds >= 150
    assert row["timed_iters"] % rounds == 0  # every round has the same number of runs
    assert 0 < row["latency_ms_p50"] <= row["latency_ms_p90"] and row["latency_cv"] >= 0
    assert row["train_saved_bytes"] > 0 and row["train_peak_bytes"] is None  # CPU: no CUDA peak
    assert row["throughput_images_per_s"] > 0
    json.dumps(row)  # JSON-serialisable as is


def test_latency_cache_does_not_retime():
    calls = []
    model = nn.Conv2d(3, 4, 3)
    model.register_forward_hook(lambda *a: calls.append(1))
    proto = LatencyProtocol(image_size=16, warmup_s=0.0, warmup_iters=10, timed_iters=30)
    first = measure_latency(model, proto, key="conv")
    n = len(calls)
    assert n >= 40
    assert measure_latency(model, proto, key="conv") == first and len(calls) == n
    measure_latency(
        model, LatencyProtocol(image_size=16, batch=2, warmup_s=0.0), key="conv"
    )  # other shape
    assert len(calls) > n


def test_failures_become_rows(monkeypatch):
    import nas.models.build

    c = nas.Candidate(depths=(1, 1, 1, 1), widths=(8, 16, 32, 64), num_classes=10, image_size=32)

    def oom(_):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(nas.models.build, "build_model", oom)
    row = measure_candidate(c, latency=False)
    assert row["status"] == "oom" and "out of memory" in row["error"]
    monkeypatch.setattr(
        nas.models.build, "build_model", lambda _: (_ for _ in ()).throw(RuntimeError("boom"))
    )
    row = measure_candidate(c, latency=False)
    assert row["status"] == "error" and "boom" in row["error"] and row["candidate_id"] == c.id


def _nas(*args):
    return subprocess.run(
        [sys.executable, "-m", "nas.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_cli_measure_json():
    r = _nas(
        "measure",
        "spaces/presets/convnextv2_atto.yaml",
        "--json",
        "--image-size",
        "64",
        "--no-latency",
    )
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert set(ROW_KEYS) <= set(row) and row["params"] == 3_708_400


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without a GPU"
)
def test_cli_measure_cuda_without_gpu():
    r = _nas("measure", "spaces/presets/convnextv2_atto.yaml", "--device", "cuda")
    assert r.returncode == 2 and "no CUDA device" in r.stderr and "Traceback" not in r.stderr


def test_cli_sample_with_constraints():
    r = _nas(
        "sample",
        "spaces/quickstart.yaml",
        "-n",
        "8",
        "--seed",
        "2",
        "--constraints",
        "--format",
        "json",
    )
    assert r.returncode == 0, r.stderr
    assert "accepted 8 of" in r.stderr
    space = nas.load_space(ROOT / "spaces" / "quickstart.yaml")
    for line in r.stdout.splitlines():
        cost = fast_cost(nas.Candidate.from_dict(json.loads(line)["candidate"]))
        assert cost["params"] / 1e6 <= space.constraints["params_m"][1]
        assert cost["macs"] / 1e6 <= space.constraints["macs_m"][1]


def test_memory_columns_follow_the_memory_batch():
    """Training memory is measured at the batch asked for (a campaign: the training batch)."""
    from nas.measure import LatencyProtocol, measure_candidate

    c = Candidate.from_params({"width": 8, "depths": [1, 1, 1, 1], "image_size": 32},
                              base=load_candidate(PRESETS / "convnextv2_atto.yaml"))  # fmt: skip
    proto = LatencyProtocol(image_size=32)
    small = measure_candidate(c, proto=proto, latency=False, memory_batch=2)
    large = measure_candidate(c, proto=proto, latency=False, memory_batch=16)
    assert small["train_batch"] == 2 and large["train_batch"] == 16
    assert large["train_saved_bytes"] > 6 * small["train_saved_bytes"]


def test_a_one_channel_candidate_measures_and_trains():
    """in_chans 1: the latency input has one channel; in a campaign trial the 3-channel digits
    become one grey channel."""
    from nas.campaign.trial import TrialSpec, run_trial
    from nas.measure import LatencyProtocol, measure_candidate

    c = Candidate.from_params({"width": 8, "depths": [1, 1, 1, 1], "image_size": 32,
                               "in_chans": 1, "num_classes": 10},
                              base=load_candidate(PRESETS / "convnextv2_atto.yaml"))  # fmt: skip
    row = measure_candidate(c, proto=LatencyProtocol(image_size=32, timed_iters=3, warmup_s=0))
    assert row["status"] == "ok" and row["latency_ms_p50"] > 0
    spec = TrialSpec(campaign="t", mode="survey", data={"dataset": "digits", "limit": 300},
                     train={"epochs": 1, "batch_size": 64}, latency_inline=False)  # fmt: skip
    trial = run_trial(spec, c, trial_id="one", seed=0)
    assert trial["status"] == "ok" and trial["epochs"] == 1 and trial["val_acc"] is not None
    assert trial["train_batch"] == 64  # memory at the training batch


def test_epochs_zero_measures_without_training_and_reports_only_measured_values():
    """train.epochs 0: an ok row with its costs (and the proxies asked for), 0 epochs, no
    accuracy or loss; the last report carries the measured objectives only."""
    from nas.campaign.trial import TrialSpec, run_trial

    c = Candidate.from_params({"width": 8, "depths": [1, 1, 1, 1], "image_size": 32},
                              base=load_candidate(PRESETS / "convnextv2_atto.yaml"))  # fmt: skip
    spec = TrialSpec(campaign="t", mode="search", data={"dataset": "synthetic"},
                     train={"epochs": 0}, objectives={"params_m": "min", "macs_m": "max"},
                     latency_inline=False, measure={"proxies": ["synflow"]})  # fmt: skip
    reports = []
    row = run_trial(spec, c, trial_id="m", seed=0, report=reports.append)
    assert row["status"] == "ok" and row["epochs"] == 0 and row["reason"] is None
    assert all(row[k] is None for k in ("val_acc", "val_acc_best", "val_loss", "train_loss"))
    assert row["params_m"] > 0 and row["macs_m"] > 0 and row["synflow"] is not None
    assert "train_s" not in row and "history" not in row
    (last,) = reports
    assert last["status"] == "ok" and "val_acc" not in last
    assert (last["params_m"], last["macs_m"]) == (row["params_m"], row["macs_m"])


def test_runner_measurement_settings_are_parsed_and_recorded(tmp_path):
    from nas.campaign.runner import load_runner

    path = tmp_path / "r.yaml"
    path.write_text("latency: {batch: 8, dtype: bfloat16, channels_last: false, threads: 2}\n"
                    "memory: {batch: 32}\n")  # fmt: skip
    r = load_runner(path)
    assert r.latency_settings() == {"batch": 8, "dtype": "bfloat16", "channels_last": False,
                                    "threads": 2}  # fmt: skip
    assert r.memory_batch == 32 and r.latency_service()
    path.write_text("latency: {dtype: float64}\n")
    with pytest.raises(UserError, match="latency.dtype: expected one of"):
        load_runner(path)
    # the timing protocol's rounds: set ones reach the protocol, unset ones keep its defaults
    path.write_text("latency: {warmup_s: 0.1, rounds: 3, max_rounds: 4, max_ci: 0.2}\n")
    settings = load_runner(path).latency_settings()
    assert {k: settings[k] for k in ("warmup_s", "rounds", "max_rounds", "max_ci")} == {
        "warmup_s": 0.1, "rounds": 3, "max_rounds": 4, "max_ci": 0.2}  # fmt: skip
    proto = LatencyProtocol(**settings)
    assert (proto.rounds, proto.max_rounds, proto.warmup_s, proto.max_ci) == (3, 4, 0.1, 0.2)
    path.write_text("latency: {rounds: 7}\n")
    assert LatencyProtocol(**load_runner(path).latency_settings()).max_rounds == 15
    bad = {
        "{rounds: 2}": "latency.rounds: expected an integer >= 3, got 2",
        "{max_rounds: 4.5}": "latency.max_rounds: expected an integer >= 3, got 4.5",
        "{rounds: 6, max_rounds: 4}": "latency.max_rounds: expected an integer >= latency.rounds (6)",
        "{warmup_s: -1}": "latency.warmup_s: expected a number of seconds >= 0, got -1",
        "{max_ci: 0}": "latency.max_ci: expected a fraction of the median in (0, 1], got 0",
    }
    for text, message in bad.items():
        path.write_text(f"latency: {text}\n")
        with pytest.raises(UserError, match=re.escape(message)):
            load_runner(path)


def test_a_protocol_with_fewer_rounds_times_fewer_rounds():
    """``latency: {rounds, max_rounds, warmup_s}`` is what the timing does: three rounds, not
    the default five to fifteen."""
    model = torch.nn.Conv2d(3, 4, 3).eval()
    quick = LatencyProtocol(rounds=3, max_rounds=3, warmup_s=0.0, max_ci=1.0, min_round_s=0.001)
    from nas.measure.latency import measure_latencies

    row = measure_latencies({"m": model}, quick)["m"]
    assert row["latency_rounds"] == 3 and row["latency_ms_p50"] > 0


def test_measurement_settings_are_part_of_the_run_key():
    """A campaign grown under other measurement settings measures again: its trials' run keys
    (what the skip of done work and the ledger's reuse compare) differ. Default settings leave
    the keys of earlier campaigns as they were; a trial's row carries the planned key."""
    from dataclasses import replace

    from nas.campaign.runner import Runner
    from nas.campaign.trial import TrialSpec, run_key, screened_row, trial_run_key

    c = Candidate(depths=(1, 1, 1, 1), widths=(8, 16, 32, 64), num_classes=10, image_size=32)
    base = TrialSpec(campaign="t", mode="survey", data={"dataset": "digits"}, train={"epochs": 1})
    before = run_key(c, 0, {"epochs": 1, "seed": 0, "device": "cpu"}, base.data, {})
    assert trial_run_key(base, c, 0, None) == before
    default = replace(base, latency=Runner().latency_settings(), measure={"erf": False})
    assert trial_run_key(default, c, 0, None) == before
    # the timing protocol's own defaults, written out, are defaults too
    spelled = replace(default, latency={**default.latency, "rounds": 5, "warmup_s": 1.0})
    assert trial_run_key(spelled, c, 0, None) == before
    changes = [
        {"latency": {**default.latency, "batch": 64}},
        {"latency": {**default.latency, "dtype": "bfloat16"}},
        {"latency": {**default.latency, "channels_last": False}},
        {"latency": {**default.latency, "threads": 2}},
        {"latency": {**default.latency, "rounds": 3}},
        {"latency_off": True},
        {"memory_batch": 8},
        {"measure": {"erf": True}},
        {"measure": {"proxies": ["synflow"]}},
    ]
    keys = [trial_run_key(replace(default, **change), c, 0, None) for change in changes]
    assert before not in keys and len(set(keys)) == len(keys)
    spec = replace(default, **changes[0])
    plan = {"candidate": c.to_dict(), "seed": 0, "train": None, "pretrain": None}
    assert screened_row(spec, plan, "x", {})["run_key"] == keys[0]


def test_latency_rounds_and_interval():
    """The figure is the median of round medians, bracketed by an order-statistic interval."""
    from nas.measure.latency import _interval, _summary

    assert _interval([1.0, 2.0, 3.0, 4.0, 5.0]) == (1.0, 3.0, 5.0)  # 93.75% with 5 rounds
    assert _interval([float(i) for i in range(1, 16)]) == (4.0, 8.0, 12.0)  # 96.5% with 15
    rounds = [[1.0, 1.1, 9.0], [1.2, 1.0, 1.1], [1.05, 1.0, 1.3], [1.1, 1.1, 1.1], [1.0, 1.4, 1.2]]
    s = _summary(rounds)
    assert s["latency_ms_p50"] == 1.1 and s["latency_rounds"] == 5 and s["timed_iters"] == 15
    assert s["latency_ci_low_ms"] == 1.05 and s["latency_ci_high_ms"] == 1.2  # 9.0 does not move it
    model = nn.Conv2d(3, 8, 3)
    proto = LatencyProtocol(image_size=16, warmup_s=0.05, warmup_max_s=0.5)
    r = measure_latency(model, proto)
    assert 5 <= r["latency_rounds"] <= 15 and r["timed_iters"] % r["latency_rounds"] == 0
    # a conv on a 16x16 image runs in well under 5 ms: a round of >= 50 ms needs more than 10 runs
    assert r["timed_iters"] // r["latency_rounds"] > 10
    assert r["latency_ci_low_ms"] <= r["latency_ms_p50"] <= r["latency_ci_high_ms"]


def test_models_timed_side_by_side_get_the_same_rounds_and_keep_their_order():
    from nas.measure import measure_latencies

    small = nn.Conv2d(3, 8, 3)
    big = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 64, 64, 3, padding=1) for i in range(4)])
    proto = LatencyProtocol(image_size=32, warmup_s=0.05, warmup_max_s=0.5, min_round_s=0.01)
    r = measure_latencies({"small": small, "big": big}, proto)
    assert r["small"]["latency_rounds"] == r["big"]["latency_rounds"] >= 5
    assert r["big"]["latency_ms_p50"] > 5 * r["small"]["latency_ms_p50"]
    assert {"warmup_iters", "latency_ci_low_ms"} <= set(r["big"])


_FAULTS_SCRIPT = """
import resource, statistics, torch
from nas.device import tune_host_allocator
tuned = tune_host_allocator()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
per_allocation = []
for _ in range(21):
    f0 = faults()
    torch.ones(2**23).sum()  # 32 MiB, above glibc's largest adaptive mmap threshold
    per_allocation.append(faults() - f0)
print(tuned, statistics.median(per_allocation))
"""


@pytest.mark.parametrize("defaults", [False, True])
def test_host_allocator_setting_stops_page_faults_on_reused_activation_memory(defaults):
    """tune_host_allocator keeps freed blocks in the heap: a 32 MiB tensor allocated again and
    again touches no new page; with glibc's defaults (the opt-out) every allocation is a fresh
    mmap that faults on each of its 8192 pages of 4 KiB."""
    env = dict(os.environ, NAS_GLIBC_MALLOC_DEFAULTS="1" if defaults else "0")
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS_SCRIPT], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    tuned, faults = out[0] == "True", float(out[1])
    assert tuned is not defaults
    # the median allocation: 8192 fresh pages with the defaults; tuned, none (the heap grows now
    # and then, which the median does not see)
    if defaults:
        assert faults > 4000, faults
    else:
        assert faults < 100, faults
