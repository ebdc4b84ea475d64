"""Campaigns on a real two-node Ray cluster on loopback (tests/ray_cluster.py): faults inside
trials, a load of 64 trials, the driver killed then ``nas resume``, and a worker node killed while
it runs a trial. Every planned trial must end exactly once in the campaign table with a true
status, and rows finished before a fault must be byte-identical afterwards.

The tests run in file order on one cluster; the node-kill test leaves one node, the
shrinking-cluster test (last) starts the worker again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.campaign.table import CampaignTable, read_table
from nas.campaign.trial import STATUSES
from tests.conftest import PRESETS, QUICK_LATENCY, ROOT
from tests.ray_cluster import HEAD_IP, WORKER_IP

pytestmark = pytest.mark.heavy

SPACE = f"""
name: cluster
base: {PRESETS / "convnextv2_atto.yaml"}
data: {{dataset: synthetic, image_size: 32, limit: {{limit}}}}
train: {{epochs: {{epochs}}, batch_size: 32, warmup_epochs: 0}}
objectives: {{val_acc: max}}
space:
  width: {{choice: {{widths}}}}
  depths: [1, 1, 1, 1]
{{extra}}
"""
RUNNER = """
name: cluster-test
cpus_per_trial: 1
max_concurrent: 2
max_failures: {max_failures}
latency: off
"""


def write(tmp_path: Path, *, widths, epochs=1, limit=320, extra="", max_failures=2):
    space, runner = tmp_path / "space.yaml", tmp_path / "runner.yaml"
    text = SPACE.replace("{limit}", str(limit)).replace("{epochs}", str(epochs))
    space.write_text(text.replace("{widths}", str(list(widths))).replace("{extra}", extra))
    runner.write_text(RUNNER.format(max_failures=max_failures))
    return space, runner


def rows_json(folder: Path) -> dict[str, str]:
    """Every row as canonical JSON, by trial id (what 'byte-identical rows' compares)."""
    table = CampaignTable(folder)
    if not len(table):
        return {}
    return {t: json.dumps(table.row(t), sort_keys=True) for t in table.df["trial_id"]}


def check_complete(folder: Path, n: int):
    df = read_table(folder)
    assert len(df) == n, df[["trial_id", "status", "reason"]]
    assert df["trial_id"].is_unique and df["candidate_id"].is_unique
    assert set(df["status"]) <= set(STATUSES)
    return df


def nas(*args, env, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nas.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def last_results(folder: Path) -> dict[str, list[dict]]:
    """Every trial's reported results so far (Tune's result.json in the experiment folder)."""
    out: dict[str, list[dict]] = {}
    for path in folder.glob("ray/*/*/result.json"):
        lines = []
        for line in path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:  # being written
                pass
        if lines:
            out.setdefault(lines[0]["trial_id"], []).extend(lines)
    return out


# ---------------------------------------------------------------------- faults inside trials
def test_trial_faults_are_recorded_and_the_campaign_completes(ray_cluster, tmp_path, monkeypatch):
    """Five candidates, one per fault: width 8 trains; 12 diverges for real (lr 1e6 -> NaN);
    16 raises for real (a derived min_lr above lr: TrainConfig raises inside the trial); 20's
    worker process dies in its training step, every attempt (tests/fault_hook.py); 24's training
    step makes an allocation that really fails (the CPU allocator's error)."""
    import ray

    from nas.campaign import run_campaign
    from nas.campaign.auth import refresh_ray_auth

    extra = """  train:
    lr: {derive: "1.0e6 if width == 12 else 2.0e-3"}
    min_lr: {derive: "0.5 if width == 16 else 1.0e-5"}"""
    space, runner = write(tmp_path, widths=[8, 12, 16, 20, 24], extra=extra, max_failures=1)
    for key, value in ray_cluster.auth_env().items():  # the cluster's token, as Ray documents
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    refresh_ray_auth()  # this process's Ray may have read another mode or token before
    ray.init(
        address=ray_cluster.address,
        runtime_env={
            "worker_process_setup_hook": "tests.fault_hook.install",
            "env_vars": {"NAS_TEST_FAULTS": json.dumps({"20": "die", "24": "oom"})},
        },
        log_to_driver=False,
        logging_level="WARNING",
    )
    try:
        folder = run_campaign(
            "survey",
            str(space),
            name="faults",
            runner_path=str(runner),
            n=5,
            results=str(tmp_path),
        )
    finally:
        ray.shutdown()
    df = check_complete(folder, 5).set_index("arch.stage.0.width")
    status = df["status"].to_dict()
    reason = df["reason"].fillna("").to_dict()
    assert status == {8: "ok", 12: "diverged", 16: "error", 20: "error", 24: "oom"}, reason
    assert reason[8] == ""
    assert "nan" in reason[12] and "epoch 1" in reason[12]
    assert "min_lr" in reason[16] and "UserError" in reason[16]
    assert "ActorDiedError" in reason[20] or "died" in reason[20]  # from Tune's error file
    assert "allocate" in reason[24]
    assert df.loc[8, "val_acc"] == df.loc[8, "val_acc"]  # trained: a number
    assert df.loc[[12, 16, 24], "params"].notna().all()  # measured before the fault
    print("\nreasons:", json.dumps(reason, indent=1))


# ---------------------------------------------------------------------- load
def test_survey_of_64_trials_loses_no_row(ray_cluster, tmp_path):
    """64 one-epoch trials (64 training images each) over both nodes; reports the per-trial
    overhead (campaign wall x slots - trial work) / trials."""
    extra = """  grn: {choice: [true, false]}
  stage:
    kernel: {choice: [3, 5, 7]}"""
    space, runner = write(tmp_path, widths=[8, 16], limit=80, extra=extra)
    env = ray_cluster.driver_env()
    t0 = time.perf_counter()
    proc = nas(
        "survey", str(space), "--runner", str(runner), "--name", "load", "-n", "64",
        "--results", str(tmp_path), env=env,
    )  # fmt: skip
    out, _ = proc.communicate(timeout=400)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, out[-3000:]
    df = check_complete(tmp_path / "load", 64)
    assert (df["status"] == "ok").all()
    nodes = {r[-1]["node_ip"] for r in last_results(tmp_path / "load").values()}
    assert nodes == {HEAD_IP, WORKER_IP}  # both nodes ran trials
    busy = float(df["wall_s"].sum())
    overhead = (wall * 2 - busy) / len(df)
    print(
        f"\nload: 64 trials in {wall:.1f} s (driver process incl. Ray connect), 2 slots, "
        f"trial work {busy / 64:.2f} s/trial, overhead {overhead:.2f} s/trial"
    )


# ---------------------------------------------------------------------- driver killed
def test_driver_sigkill_on_the_cluster_then_resume(ray_cluster, tmp_path):
    space, runner = write(tmp_path, widths=[8, 12, 16, 20, 24, 32], epochs=3, limit=640)
    env = ray_cluster.driver_env()
    folder = tmp_path / "k"
    proc = nas(
        "survey", str(space), "--runner", str(runner), "--name", "k", "-n", "6",
        "--results", str(tmp_path), env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 180
    while time.time() < deadline and len(read_table(folder)) < 2 and proc.poll() is None:
        time.sleep(0.2)
    before = rows_json(folder)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only: the cluster's nodes live on
    proc.wait()
    assert 2 <= len(before) < 6, "the campaign should be interrupted mid-way"
    resumed = nas("resume", str(folder), env=env)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    df = check_complete(folder, 6)
    assert (df["status"] == "ok").all() and (df["epochs"] == 3).all(), df[
        ["status", "reason"]
    ].to_string()
    after = rows_json(folder)
    assert {t: after[t] for t in before} == before  # finished rows untouched, byte for byte


# ---------------------------------------------------------------------- worker node killed
def test_worker_node_killed_mid_trial_is_retried_on_the_head(ray_cluster, tmp_path):
    """The worker node dies (SIGKILL of its raylet's process group) while it runs a trial: Tune
    retries that trial on the head (FailureConfig) and the campaign completes."""
    # ~2 s epochs: the kill lands while the trial still trains
    space, runner = write(tmp_path, widths=[8, 12, 16, 20], epochs=3, limit=6000, max_failures=3)
    env = ray_cluster.driver_env()
    folder = tmp_path / "node"
    proc = nas(
        "survey", str(space), "--runner", str(runner), "--name", "node", "-n", "4",
        "--results", str(tmp_path), env=env,
    )  # fmt: skip
    victim, before = None, {}
    deadline = time.time() + 180
    while time.time() < deadline and victim is None and proc.poll() is None:
        done = (
            set(read_table(folder)["trial_id"]) if (folder / "trials.parquet").exists() else set()
        )
        for trial_id, results in last_results(folder).items():
            last = results[-1]
            # an epoch reported from the worker node, more epochs to go, no row yet
            if (
                done  # a finished row exists: it must survive the fault byte for byte
                and trial_id not in done
                and last.get("node_ip") == WORKER_IP
                and 1 <= last.get("epoch", 0) < 3
                and not last.get("done")
            ):
                before = rows_json(folder)
                victim = trial_id
                ray_cluster.kill_worker()
                break
        time.sleep(0.1)
    assert victim is not None, "no trial was seen running on the worker node"
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    df = check_complete(folder, 4)
    assert (df["status"] == "ok").all() and (df["epochs"] == 3).all(), df[["status", "reason"]]
    retried = last_results(folder)[victim]
    trace = [(r.get("epoch"), r["node_ip"], r.get("done"), r.get("pid")) for r in retried]
    assert retried[-1]["node_ip"] == HEAD_IP, (
        trace,
        out[-3000:],
    )  # finished on the head after the worker died
    on_worker = [r["epoch"] for r in retried if r["node_ip"] == WORKER_IP and "epoch" in r]
    on_head = [r["epoch"] for r in retried if r["node_ip"] == HEAD_IP and "epoch" in r]
    print(f"\nkilled trial {victim}: epochs {on_worker} on the worker, then {on_head} on the head")
    assert on_worker and on_head
    assert on_head[0] == max(on_worker) + 1, trace  # continued from its last epoch's checkpoint
    after = rows_json(folder)
    assert {t: after[t] for t in before} == before


# ---------------------------------------------------------------------- the cluster shrinks
def test_a_shrinking_cluster_stops_cleanly_and_resume_finishes(ray_cluster, tmp_path):
    """Issue 29: the latency service holds the head's only CPU, so trials (1 CPU) run on the
    worker alone. The worker dies after the first row: trials are pending and no live node can
    fit one. The driver says so every ``status_interval_s``, stops after ``wait_for_resources_s``
    with exit 3 and a line naming ``nas resume``, finished rows kept. The worker comes back
    (``ray start --address=...`` again) and ``nas resume`` finishes: every trial exactly once."""
    if len(ray_cluster.alive_nodes()) < 2:  # the node-kill test above leaves the head alone
        ray_cluster.start_worker()
    space, runner = write(tmp_path, widths=[8, 12, 16], epochs=1, limit=320)
    settings = f"latency: {{mode: service, {QUICK_LATENCY}}}\nwait_for_resources_s: 10\nstatus_interval_s: 3\n"
    runner.write_text(runner.read_text().replace("latency: off\n", settings))
    env = ray_cluster.driver_env()
    folder = tmp_path / "shrink"
    t0 = time.perf_counter()
    proc = nas(
        "survey", str(space), "--runner", str(runner), "--name", "shrink", "-n", "3",
        "--results", str(tmp_path), env=env,
    )  # fmt: skip
    deadline = time.time() + 180
    while time.time() < deadline and len(read_table(folder)) < 1 and proc.poll() is None:
        time.sleep(0.2)
    t_row = time.perf_counter()
    ray_cluster.kill_worker()
    before = rows_json(folder)
    t_kill = time.perf_counter()
    out, _ = proc.communicate(timeout=300)
    t_stop = time.perf_counter()
    assert proc.returncode == 3, out[-3000:]
    assert 1 <= len(read_table(folder)) < 3, out[-3000:]
    waits = re.findall(
        r"waiting for resources: (\d) trial\(s\) pending, each needs 1 CPU, 0 GPU \(runner "
        rf"'cluster-test'\), and no live node fits one; live nodes: {HEAD_IP} 1 CPU 0 GPU "
        r"\(0 CPU 0 GPU for trials\); waited (\S+) of 10s",
        out,
    )
    assert waits, out[-3000:]
    stop = out.strip().splitlines()[-1]
    assert stop.startswith("nas survey: stopped: runner 'cluster-test': no live node could fit "
                           "a trial (1 CPU, 0 GPU) for "), out[-3000:]  # fmt: skip
    assert f"`nas resume {folder}` continues the campaign once a node that fits" in stop
    # (Tune logs the trial the dead node took with it, traceback included; the stop has none)
    assert "Traceback" not in out[out.index("waiting for resources") :]
    print("\n" + "\n".join(out.strip().splitlines()[-4:]))
    after_stop = rows_json(folder)
    assert {t: after_stop[t] for t in before} == before

    ray_cluster.start_worker()
    t_back = time.perf_counter()
    resumed = nas("resume", str(folder), env=env)
    out, _ = resumed.communicate(timeout=300)
    print(
        f"first row {t_row - t0:.0f} s, worker dead (seen by the head) {t_kill - t_row:.0f} s "
        f"later, stop {t_stop - t_kill:.0f} s later, worker back {time.perf_counter() - t_back:.0f}"
        f" s before resume finished (loaded machine)"
    )
    assert resumed.returncode == 0, out[-3000:]
    df = check_complete(folder, 3)
    assert (df["status"] == "ok").all(), df[["status", "reason"]].to_string()
    after = rows_json(folder)
    assert {t: after[t] for t in after_stop} == after_stop  # kept rows untouched, byte for byte
