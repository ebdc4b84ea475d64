"""Real local Ray campaigns (tiny space, synthetic data, 1 epoch): survey, search, ablate, the
table's schema, growing a campaign without re-running work, and SIGKILL of the driver + resume."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.campaign.table import read_table
from nas.campaign.trial import STATUSES
from nas.measure import ROW_KEYS
from tests.conftest import (
    PRESETS,
    QUICK_LATENCY,
    ROOT,
    assert_refused_without_token,
    kill_driver,
    nas_process,
)

pytestmark = pytest.mark.heavy

SPACE = f"""
name: tiny
base: {PRESETS / "convnextv2_atto.yaml"}
data: {{dataset: synthetic, image_size: 32}}
train: {{epochs: 1, batch_size: 64}}
objectives: {{val_acc: max, macs_m: min}}
constraints: {{params_m: [0, {{limit}}]}}
space:
  width: {{choice: [8, 16]}}
  depths: [1, 1, 1, 1]
  grn: {{choice: [true, false]}}
  stage:
    kernel: {{choice: [3, 5], tie: true}}
"""
RUNNER = f"""
name: test
cpus_per_trial: 1
max_concurrent: 2
object_store_mb: 128
latency: {{mode: serial, {QUICK_LATENCY}}}
"""


def write_space(tmp_path: Path, limit: float = 1.0) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE.replace("{limit}", str(limit)))
    return path


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from nas.campaign import init_ray
    from nas.campaign.runner import Runner

    init_ray(Runner(num_cpus=3, object_store_mb=128))  # two trials + the latency service
    yield
    ray.shutdown()  # only the local Ray this module started


@pytest.fixture()
def runner(tmp_path) -> Path:
    path = tmp_path / "runner.yaml"
    path.write_text(RUNNER)
    return path


def check_schema(df, n: int) -> None:
    assert len(df) == n and df["trial_id"].is_unique
    for col in (
        "trial_id",
        "candidate_id",
        "status",
        "reason",
        "val_acc",
        "seed",
        "campaign",
        "mode",
        "epochs",
        "params_m",
        "macs_m",
        "run_key",
        "wall_s",
        *ROW_KEYS,
    ):
        assert col in df.columns, col
    assert set(df["status"]) <= set(STATUSES)
    ok = df[df["status"] == "ok"]
    assert (
        ok[["val_acc", "params", "macs", "params_deploy", "macs_deploy", "latency_ms_p50"]]
        .notna()
        .all()
        .all()
    )
    assert (ok["epochs"] == 1).all()
    assert any(
        c.startswith("arch.stage.") for c in df.columns
    )  # every candidate choice is a column


def test_survey_then_grow_without_rerun(ray_local, tmp_path, runner):
    from nas.campaign import run_campaign

    space = write_space(tmp_path)
    folder = run_campaign(
        "survey", str(space), name="s", runner_path=str(runner), n=4, seed=0, results=str(tmp_path)
    )
    df = read_table(folder)
    check_schema(df, 4)
    assert (df["status"] == "ok").all() and df["candidate_id"].is_unique
    # timed by the campaign's latency service before training, which says where it measured
    assert set(df["latency_source"]) == {"service"}
    assert (
        df[["latency_ms_p50", "latency_node", "latency_device", "latency_threads"]]
        .notna()
        .all()
        .all()
    )
    # timed in the same rounds as the space's base candidate: one reference for every row
    assert df["latency_rel"].notna().all() and (df["latency_ref_ms_p50"] > 0).all()
    assert df["latency_ref_id"].nunique() == 1
    checkpoints = list((folder / "ray").glob("survey-*/*/checkpoint_*/train.pt"))
    assert len(checkpoints) == 4  # every trial checkpointed its epoch (what resume continues from)
    assert (
        (folder / "space.yaml").is_file()
        and (folder / "runner.yaml").is_file()
        and (folder / "trials.csv").is_file()
    )
    # same name again: nothing new to run, nothing re-run, table unchanged
    run_campaign(
        "survey", str(space), name="s", runner_path=str(runner), n=4, seed=0, results=str(tmp_path)
    )
    again = read_table(folder)
    assert again.equals(df)


def test_search_records_infeasible_without_training(ray_local, tmp_path, runner):
    from nas.campaign import run_campaign

    space = write_space(tmp_path, limit=0.1)  # width 16 (~0.22 M params) violates it, width 8 fits
    folder = run_campaign(
        "search", str(space), name="q", runner_path=str(runner), n=6, seed=1, results=str(tmp_path)
    )
    df = read_table(folder)
    check_schema(df, 6)
    infeasible = df[df["status"] == "infeasible"]
    assert len(infeasible) >= 1
    assert (infeasible["epochs"] == 0).all() and infeasible["val_acc"].isna().all()
    assert infeasible["reason"].str.contains("params_m").all()
    assert infeasible["params_m"].notna().all()  # measured, never trained
    assert (df.loc[df["status"] == "ok", "params_m"] <= 0.1).all()
    import optuna  # the study is stored in the campaign folder (for optuna-dashboard)
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "optuna.log")))
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.n_trials == 6


def test_predicted_latency_fills_every_row_and_its_constraint_holds_back(ray_local, tmp_path):
    """latency: {mode: predict}: every row has latency_pred_ms from the model, nothing is timed,
    and a constraint on it keeps the slow candidates from training."""
    import numpy as np

    from nas.campaign import run_campaign
    from nas.measure.latency import LatencyProtocol
    from nas.measure.latency_fit import candidate_parts, fit_latency_model, predict_candidate
    from nas.space import load_space

    space = write_space(tmp_path, limit=10.0)
    samples, _ = load_space(space).sample_distinct(8, np.random.default_rng(0))
    cands = [s.candidate for s in samples]  # the whole space (2 x 2 x 2): every block is fitted
    proto = LatencyProtocol(image_size=32)

    def part_ms(parts):  # a synthetic device: the model is fitted without timing anything
        return [1e-3 + 1e-6 * p.features[0] for p in parts]

    def whole_ms(cs):
        return [sum(part_ms(candidate_parts(c, proto))) for c in cs]

    model = fit_latency_model(cands, [], proto=proto, time_parts=part_ms, time_whole=whole_ms)
    model.save(tmp_path / "model.json")
    limit = float(np.median([predict_candidate(model, c, proto).ms for c in cands]))
    text = space.read_text().replace("constraints: {params_m: [0, 10.0]}",
                                     f"constraints: {{latency_pred_ms: [0, {limit}]}}")  # fmt: skip
    space.write_text(text)
    runner = tmp_path / "predict.yaml"
    runner.write_text(RUNNER.replace(f"latency: {{mode: serial, {QUICK_LATENCY}}}",
                                     f"latency: {{mode: predict, model: {tmp_path / 'model.json'}}}"))  # fmt: skip
    assert "mode: predict" in runner.read_text()
    folder = run_campaign("survey", str(space), name="p", runner_path=str(runner), n=8, seed=0,
                          results=str(tmp_path))  # fmt: skip
    df = read_table(folder)
    assert len(df) == 8 and df["latency_pred_ms"].notna().all()
    assert (df["latency_source"] == "predict").all() and df["latency_ms_p50"].isna().all()
    infeasible = df[df["status"] == "infeasible"]
    assert len(infeasible) >= 1 and (infeasible["latency_pred_ms"] > limit).all()
    assert (infeasible["epochs"] == 0).all()
    assert infeasible["reason"].str.startswith("latency_pred_ms=").all()
    assert (df.loc[df["status"] == "ok", "latency_pred_ms"] <= limit).all()


def test_ablate_one_factor_at_a_time(ray_local, tmp_path, runner):
    from nas.campaign import run_campaign

    space = write_space(tmp_path, limit=5.0)
    folder = run_campaign(
        "ablate",
        str(space),
        name="a",
        runner_path=str(runner),
        seed=0,
        results=str(tmp_path),
        axes=["grn", "stage.kernel"],
        seeds=2,
        baseline=str(PRESETS / "convnextv2_atto.yaml"),
        train_overrides={"epochs": 1},
    )
    df = read_table(folder)
    # baseline (grn on, kernel 7) + grn=false + kernel 3 + kernel 5; grn=true is the baseline itself
    assert sorted(df["axis"].unique()) == ["baseline", "grn", "stage.kernel"]
    assert len(df) == 4 * 2 and sorted(df["seed"].unique()) == [0, 1]
    check_schema(df, 8)
    base = df[df["axis"] == "baseline"].iloc[0]
    kernels = df[df["axis"] == "stage.kernel"]
    assert set(kernels["arch.stage.0.kernel"]) == {3, 5} and base["arch.stage.0.kernel"] == 7
    assert (df[df["axis"] == "grn"]["arch.grn"] == False).all()  # noqa: E712


def test_driver_sigkill_then_resume(tmp_path, runner):
    space = write_space(tmp_path)
    text = space.read_text().replace("epochs: 1", "epochs: 3")
    space.write_text(text)
    folder = tmp_path / "k"
    proc = nas_process(
        "survey",
        str(space),
        "--runner",
        str(runner),
        "--name",
        "k",
        "-n",
        "6",
        "--results",
        str(tmp_path),
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and len(read_table(folder)) < 1:
        time.sleep(0.5)
    assert_refused_without_token(proc.pid, tmp_path)  # while the campaign's trials run
    while time.time() < deadline and len(read_table(folder)) < 2:
        time.sleep(0.5)
    before = read_table(folder)
    assert 2 <= len(before) < 6, "the campaign should be interrupted mid-way"
    kill_driver(proc)
    resumed = nas_process("resume", str(folder))
    out, _ = resumed.communicate(timeout=420)
    assert resumed.returncode == 0, out[-3000:]
    after = read_table(folder)
    assert len(after) == 6 and after["trial_id"].is_unique and after["candidate_id"].is_unique
    assert (after["status"] == "ok").all()
    kept = after.set_index("trial_id").loc[before["trial_id"]]
    # finished trials were not re-run: same start/finish times and metrics
    for col in ("started_at", "finished_at", "val_acc"):
        assert list(kept[col]) == list(before.set_index("trial_id")[col]), col


def test_search_with_asha_records_early_stops(ray_local, tmp_path):
    from nas.campaign import run_campaign

    space = write_space(tmp_path, limit=5.0)
    space.write_text(space.read_text().replace("epochs: 1", "epochs: 3"))
    runner = tmp_path / "asha.yaml"
    runner.write_text(RUNNER + "scheduler: asha\n")
    folder = run_campaign(
        "search",
        str(space),
        name="asha",
        runner_path=str(runner),
        n=6,
        seed=3,
        results=str(tmp_path),
    )
    df = read_table(folder)
    assert len(df) == 6 and df["candidate_id"].notna().all()
    assert set(df["status"]) <= {"ok", "stopped"}
    stopped = df[df["epochs"] < 3]
    assert len(stopped) >= 1  # ASHA's grace period is one epoch: the worse half stops there
    assert (stopped["status"] == "stopped").all()
    assert stopped["reason"].str.startswith("stopped early by the scheduler after").all()
    assert df[["params", "macs", "val_acc"]].notna().all().all()  # measured before the stop
    # Optuna hears the same: stopped trials are PRUNED, finished ones COMPLETE with their values
    states = {t.user_attrs["tune_trial_id"]: t for t in _study(folder).trials}
    for _, row in df.iterrows():
        t = states[row["trial_id"]]
        if row["status"] == "stopped":
            assert t.state.name == "PRUNED" and t.values is None
        else:
            assert t.state.name == "COMPLETE"
            assert t.values == [row["val_acc"], row["macs_m"]]


def _study(folder: Path):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "optuna.log")))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def test_two_objective_search_tells_optuna_only_measured_values(ray_local, tmp_path, runner):
    """Two trials side by side, latency from the service: every COMPLETE Optuna trial holds the
    table's measured val_acc and latency_ms_p50; infeasible ones are FAIL; no sentinel anywhere."""
    from nas.campaign import run_campaign

    space = write_space(tmp_path, limit=0.1)  # width 16 is over 0.1 M params: infeasible
    text = space.read_text().replace("macs_m: min", "latency_ms_p50: min")
    space.write_text(text.replace("width: {choice: [8, 16]}", "width: {choice: [4, 8, 16]}"))
    folder = run_campaign(
        "search", str(space), name="q2", runner_path=str(runner), n=6, seed=0, results=str(tmp_path)
    )
    df = read_table(folder).set_index("trial_id")
    assert set(df["status"]) <= {"ok", "infeasible"} and len(df) == 6
    assert (df["latency_source"] == "service").all() and df["latency_ms_p50"].notna().all()
    trials = _study(folder).trials
    assert len(trials) == 6
    for t in trials:
        row = df.loc[t.user_attrs["tune_trial_id"]]
        assert t.user_attrs["status"] == row["status"]
        if row["status"] == "ok":
            assert t.state.name == "COMPLETE"
            assert t.values == [row["val_acc"], row["latency_ms_p50"]]
        else:
            assert t.state.name == "FAIL" and t.values is None
    values = [v for t in trials if t.values for v in t.values]
    assert values and all(0 < v < 1e6 for v in values)  # no 1e9, no 0.0 stand-ins


def test_a_trial_that_fits_no_node_is_one_clear_error(ray_local, tmp_path):
    from nas.campaign import run_campaign
    from nas.errors import UserError

    runner = tmp_path / "big.yaml"
    runner.write_text(RUNNER.replace("cpus_per_trial: 1", "cpus_per_trial: 64"))
    with pytest.raises(UserError, match=r"cpus_per_trial: a trial needs 64 CPU .* largest"):
        run_campaign(
            "survey", str(write_space(tmp_path)), name="big", runner_path=str(runner), n=2,
            results=str(tmp_path),
        )  # fmt: skip
    assert not (tmp_path / "big" / "trials.parquet").exists()


def test_progress_lines_on_stderr_and_quiet(tmp_path, runner):
    """One line per finished trial and a summary on stderr, a line when a trial starts (and on
    which node), a status line whenever ``status_interval_s`` (here 0.5 s) passed without one
    while trials run; ``--quiet`` prints none."""
    space = write_space(tmp_path)
    runner.write_text(RUNNER + "status_interval_s: 0.5\n")
    base = [sys.executable, "-m", "nas.cli", "survey", str(space), "--runner", str(runner),
            "--results", str(tmp_path), "-n", "2"]  # fmt: skip
    loud = subprocess.run([*base, "--name", "p"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert loud.returncode == 0, loud.stderr[-2000:]
    df = read_table(tmp_path / "p")
    for trial_id in df["trial_id"]:
        assert re.search(rf"trial {trial_id} ok val_acc=\S+ macs_m=\S+ \[\S+\]", loud.stderr)
        assert re.search(rf"trial {trial_id} started on \d+\.\d+\.\d+\.\d+ \([12] running\)",
                         loud.stderr), loud.stderr[-3000:]  # fmt: skip
    # trials take seconds (latency timing >= 1 s each): the 0.5 s interval passes while they run
    status = re.findall(r"status: ([12]) running \[(\S+) epoch ([01])/1 on (\S+)[^\]]*\], "
                        r"(\d) finished, 0 failed, (\d) pending", loud.stderr)  # fmt: skip
    assert status, loud.stderr[-3000:]
    assert {trial for _, trial, *_ in status} <= set(df["trial_id"])
    assert all(int(fin) + int(run) + int(pend) <= 2 for run, _, _, _, fin, pend in status)
    assert re.search(r"2 done \(2 ok\), 0 running, 0 failed of 2 planned; elapsed \S+, ETA 0s",
                     loud.stderr)  # fmt: skip
    quiet = subprocess.run([*base, "--name", "q", "--quiet"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert quiet.returncode == 0 and "done (" not in quiet.stderr and "trial " not in quiet.stderr
    assert "status: " not in quiet.stderr


def test_scale_bench_tiny_reports_its_curves_and_measure_only_rows(ray_local):
    """``nas bench scale`` in a tiny mode: the report's structure (not its timings), and trials
    that skip training (``train.epochs: 0``) are ok rows with their costs and no accuracy."""
    from nas.bench.scale import COLUMNS, bench_scale

    res = bench_scale(n=4, marks=[2, 4], window=2)
    assert res["marks"] == [2, 4]
    for mode in ("survey", "search"):
        part = res[mode]
        assert part["trials"] == 4 and part["statuses"] == {"ok": 4}
        assert [c["trials"] for c in part["curve"]] == [2, 4]
        for point in part["curve"]:
            assert set(point) == set(COLUMNS)
            assert point["wall_per_trial_s"] > 0 and point["rss_mb"] > 0
            assert point["state_kb"] >= 0 and point["table_kb"] >= 0  # 0: sampled before a write
        # the last mark's sample is taken after the campaign: the files are there
        assert part["curve"][-1]["state_kb"] > 0 and part["curve"][-1]["table_kb"] > 0
    suggest = res["search"]["suggest"]
    assert {s["sampler"] for s in suggest} == {"tpe", "tpe_optuna_default", "nsga2"}
    assert all(s["suggest_ms"] > 0 for s in suggest)
    assert res["survey"]["resume_s"] > 0 and res["survey"]["grow_first_trial_s"] > 0
    assert res["survey"]["grown_rows"] == 6  # two new trials, none re-run
    for mode in ("survey", "search"):
        assert res[mode]["epochs_max"] == 0 and res[mode]["val_acc_rows"] == 0
        assert res[mode]["costs_missing"] == 0
    assert res["search"]["optuna_states"] == {"COMPLETE": 4}  # told the measured costs
