"""nas.bench: registry, errors, output shape, Kendall tau and the cost benchmark's agreement check.
Correctness only: no benchmark is timed against a wall-clock bound here."""

from __future__ import annotations

import math

import pytest

from nas.bench import BENCHES, format_result, kendall_tau, run_bench
from nas.bench.cost import bench_cost
from nas.errors import UserError

NAMES = {
    "campaign",
    "surrogate",
    "cost",
    "latency",
    "reparam",
    "revcol",
    "kernels",
    "grn",
    "fcmae",
    "trainer",
    "gpu",
    "report",
    "scale",
    "all",
}


def test_registry_lists_every_benchmark():
    assert set(BENCHES) == NAMES
    assert all(callable(fn) for fn in BENCHES.values())


def test_unknown_name_lists_the_valid_names(tmp_path):
    with pytest.raises(UserError) as err:
        run_bench("nope", quick=True, out_dir=tmp_path)
    assert all(name in str(err.value) for name in NAMES)
    assert not list(tmp_path.iterdir())


def test_format_result_ends_with_the_targets():
    result = {
        "figures": {"ratio": 0.91, "per_k": {"k7/k3": 1.5}},
        "targets": [
            {"label": "ratio", "value": 0.91, "text": ">= 0.95", "met": False},
            {"label": "k31/k3", "value": 7.0, "text": "<= 6x on GPU; n/a on CPU", "met": None},
        ],
        "notes": ["a note"],
        "provenance": {"quick": True, "device": "cpu", "torch": "x", "threads": 1},
    }
    lines = format_result("demo", result)
    assert lines[0].startswith("bench demo (quick, cpu")
    assert lines[-2:] == [
        "ratio 0.91 (target >= 0.95: MISSED)",
        "k31/k3 7 (target <= 6x on GPU; n/a on CPU: n/a)",
    ]
    assert any("note: a note" in line for line in lines)


def test_kendall_tau_known_rankings():
    a = [1, 2, 3, 4, 5]
    assert kendall_tau(a, a) == 1.0
    assert kendall_tau(a, a[::-1]) == -1.0
    assert kendall_tau(a, [10, 20, 30, 40, 50]) == 1.0  # values, not ranks: same order
    # by hand: [3, 1, 2] vs [1, 2, 3]: pairs (3,1) disc, (3,2) disc, (1,2) conc -> (1 - 2) / 3
    assert kendall_tau([3, 1, 2], [1, 2, 3]) == pytest.approx(-1 / 3)
    # one swapped adjacent pair out of 10: (9 - 1) / 10
    assert kendall_tau([1, 2, 3, 4, 5], [2, 1, 3, 4, 5]) == pytest.approx(0.8)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        kendall_tau([1, 2], [1, 2, 3])


def test_kendall_tau_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    a, b = [1, 2, 2, 3, 5, 4, 7], [2, 1, 3, 3, 6, 4, 5]
    assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)


def test_cost_bench_tiny_agrees_with_full_measurement():
    res = bench_cost(n_fast=8, n_full=2, rounds=2)
    figures = res["figures"]
    assert figures["agreement"] is True and figures["mismatches"] == []
    assert figures["n_fast"] == 8 and figures["n_full"] == 2
    assert figures["fast_per_s"] > 0 and figures["speedup"] > 0
    assert [t["label"] for t in res["targets"]][-1] == "fast_per_s"
    assert all(set(t) == {"label", "value", "text", "met"} for t in res["targets"])


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the no-GPU path (CI has no GPU)"
)
def test_the_gpu_check_says_skipped_in_one_line_without_a_gpu(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.run([sys.executable, "-m", "nas.cli", "bench", "gpu"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "bench gpu: skipped: no CUDA GPU here: nothing to check\n"


def test_fcmae_bench_runs_and_writes_its_figures(tmp_path):
    result = run_bench("fcmae", quick=True, out_dir=tmp_path)
    figures = result["figures"]
    assert figures["step_time_ratio"] > 0 and figures["decoder_params"] > 0
    assert figures["mask"] == "4x4 patches of 8 px, ratio 0.6"
    assert (tmp_path / "fcmae.json").is_file()
    assert format_result("fcmae", result)[-1].startswith("pretrain/supervised step time ")


@pytest.mark.heavy
def test_report_bench_quick_reports_every_section_and_agreeing_hypervolumes(tmp_path):
    result = run_bench("report", quick=True, out_dir=tmp_path)
    figures = result["figures"]
    assert figures["trials"] == 1000 and 0 < figures["front"] < figures["trials"]
    drawn = ["Pareto front", "Hypervolume over trials", "Cost attribution"]
    drawn += ["Design-space EDFs (error, per axis value)", "Accuracy per epoch of the front"]
    assert all(figures["sections"][s] == "ok" for s in drawn), figures["sections"]
    hv = figures["hypervolume"]
    assert (hv["points"], hv["objectives"]) == (200, 4)
    assert hv["rel_diff"] <= 1e-12 and hv["hso_over_moocore"] > 0
    assert [t["label"] for t in result["targets"]] == [
        "report_s",
        "hypervolume_over_trials_s[1000]",
        "hypervolume.rel_diff",
    ]
    assert [t["met"] for t in result["targets"][:2]] == [None, None]  # time targets: full run
    assert list(figures["hypervolume_over_trials_s"]) == ["1000 trials"]
    assert (tmp_path / "report.json").is_file()
    assert format_result("report", result)[-1].startswith("hypervolume.rel_diff ")
