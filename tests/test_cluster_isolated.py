"""Campaigns on a cluster whose worker node cannot see the driver's files (stack.md T16): the
worker runs in its own mount namespace with an empty tmpfs over the results folder, as if it were
another machine; only Ray's storage is shared (a folder both see, like NFS, or S3 served by a
local moto server on 127.0.0.1, stack.md T17). Survey, search and ``nas resume`` after a driver
SIGKILL: every planned trial exactly once, finished rows byte-identical, trials on both nodes,
identical work reused, and the Optuna study holding exactly the table's measured values."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.campaign.table import read_table
from tests.conftest import PRESETS, QUICK_LATENCY, ROOT
from tests.ray_cluster import HEAD_IP, WORKER_IP, RayCluster, free_port, node_env

pytestmark = pytest.mark.heavy

SPACE = f"""
name: iso
base: {PRESETS / "convnextv2_atto.yaml"}
data: {{dataset: synthetic, image_size: 32, limit: 320}}
train: {{epochs: {{epochs}}, batch_size: 32, warmup_epochs: 0}}
objectives: {{val_acc: max, latency_ms_p50: min}}
space:
  width: {{choice: {{widths}}}}
  depths: [1, 1, 1, 1]
"""
RUNNER = f"""
name: iso
cpus_per_trial: {{cpus}}
max_concurrent: {{concurrent}}
max_failures: 2
reuse_actors: false
storage_path: {{storage}}
sampler: random
latency: {{{{{QUICK_LATENCY}}}}}
"""
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def s3():
    """A local S3-compatible server (moto) on 127.0.0.1 with one bucket; nothing leaves the box."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    client.create_bucket(Bucket="nas")
    query = f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    try:
        yield {"uri": f"s3://nas/campaigns?{query}", "client": client}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def isolated(tmp_path_factory, s3):
    root = tmp_path_factory.mktemp("iso")
    results, storage = root / "results", root / "storage"
    results.mkdir()
    storage.mkdir()
    cluster = RayCluster(cpus=2, hide=(results,), env=node_env(**AWS)).start()
    try:
        yield cluster, results, storage
    finally:
        cluster.shutdown()


def write(tmp: Path, *, widths, epochs: int, cpus: int, concurrent: int, storage: str):
    space, runner = tmp / "space.yaml", tmp / "runner.yaml"
    space.write_text(SPACE.replace("{epochs}", str(epochs)).replace("{widths}", str(widths)))
    runner.write_text(RUNNER.format(cpus=cpus, concurrent=concurrent, storage=json.dumps(storage)))
    return space, runner


def nas(*args: str, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nas.cli", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)  # fmt: skip


def rows_json(folder: Path) -> dict[str, str]:
    from nas.campaign.table import CampaignTable

    table = CampaignTable(folder)
    return {t: json.dumps(table.row(t), sort_keys=True) for t in table.df["trial_id"]}


def kill_then_resume(proc, folder: Path, env: dict, *, at_rows: int, total: int) -> dict:
    """SIGKILL the driver once ``at_rows`` rows are written, then ``nas resume``; returns the rows
    that existed at the kill."""
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (folder / "trials.parquet").exists() and len(read_table(folder)) >= at_rows:
            break
        time.sleep(0.2)
    before = rows_json(folder)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert at_rows <= len(before) < total, "the campaign should be interrupted mid-way"
    resumed = nas("resume", str(folder), env=env)
    out, _ = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, out[-3000:]
    return before


def test_the_worker_node_cannot_see_the_results_folder(isolated):
    cluster, results, _ = isolated
    (results / "marker").write_text("driver side")
    code = f"""
import os, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as A
ray.init(address={cluster.address!r}, logging_level="ERROR", log_to_driver=False)
ids = {{n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}}
see = ray.remote(num_cpus=0)(lambda p: os.path.exists(p))
print("SEES", {{ip: ray.get(see.options(scheduling_strategy=A(i, soft=False)).remote({str(results / "marker")!r})) for ip, i in ids.items()}})
"""
    out = subprocess.run([sys.executable, "-c", code], env=cluster.driver_env(),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    line = next(x for x in out.stdout.splitlines() if x.startswith("SEES"))
    assert line == f"SEES {{'{HEAD_IP}': True, '{WORKER_IP}': False}}" or line == (
        f"SEES {{'{WORKER_IP}': False, '{HEAD_IP}': True}}"
    ), out.stderr[-2000:]


@pytest.mark.parametrize("where", ["shared", "s3"])
def test_survey_killed_and_resumed_without_the_driver_files(isolated, s3, tmp_path, where):
    """Shared-folder or S3 storage; the latency service (1 CPU) and the ledger live on the
    driver's node (the head); trials run on both nodes; the worker never reads the results
    folder."""
    cluster, results, storage = isolated
    location = str(storage) if where == "shared" else s3["uri"]
    space, runner = write(tmp_path, widths=[8, 12, 16, 20, 24, 32], epochs=3, cpus=1,
                          concurrent=3, storage=location)  # fmt: skip
    env = cluster.driver_env(**AWS)
    folder = results / f"survey-{where}"
    proc = nas("survey", str(space), "--runner", str(runner), "--name", folder.name, "-n", "6",
               "--results", str(results), env=env, start_new_session=True)  # fmt: skip
    before = kill_then_resume(proc, folder, env, at_rows=2, total=6)
    df = read_table(folder)
    assert len(df) == 6 and df["trial_id"].is_unique and df["candidate_id"].is_unique
    assert (df["status"] == "ok").all() and (df["epochs"] == 3).all(), df[
        ["status", "reason"]
    ].to_string()
    after = rows_json(folder)
    assert {t: after[t] for t in before} == before  # finished rows untouched, byte for byte
    assert set(df["node"]) == {HEAD_IP, WORKER_IP}  # trials ran on both nodes
    assert (df["latency_source"] == "service").all() and set(df["latency_node"]) == {HEAD_IP}
    manifest = json.loads((folder / "campaign.json").read_text())
    assert manifest["experiment"].startswith(str(storage) if where == "shared" else "s3://nas/")
    assert not (folder / "ray").exists()  # Ray's files went to the storage, not the campaign


def test_search_on_s3_reuses_work_and_tells_optuna_the_truth(isolated, s3, tmp_path):
    """S3 storage (moto on 127.0.0.1). Trials need 2 CPUs: only the isolated worker has them free
    (the head's second CPU holds the latency service), so every trial runs where the results
    folder is invisible. Two distinct candidates over 5 sequential trials: the 3 repeats reuse the
    first rows through the ledger. Killed after 2 rows and resumed from S3."""
    cluster, results, _ = isolated
    space, runner = write(tmp_path, widths=[8, 16], epochs=2, cpus=2, concurrent=1,
                          storage=s3["uri"])  # fmt: skip
    env = cluster.driver_env(**AWS)
    folder = results / "search"
    proc = nas("search", str(space), "--runner", str(runner), "--name", "search", "-n", "5",
               "--seed", "4", "--results", str(results), env=env, start_new_session=True)  # fmt: skip
    before = kill_then_resume(proc, folder, env, at_rows=2, total=5)
    df = read_table(folder)
    assert len(df) == 5 and df["trial_id"].is_unique
    assert (df["status"] == "ok").all()
    after = rows_json(folder)
    assert {t: after[t] for t in before} == before
    trained = df[df["reused_from"].isna()] if "reused_from" in df else df
    assert set(trained["node"]) == {WORKER_IP}
    assert trained["run_key"].is_unique and len(trained) == df["run_key"].nunique()
    assert len(df) - len(trained) == 5 - df["run_key"].nunique() >= 3  # repeats reused
    # the experiment lives in the bucket, not on any local disk
    keys = [o["Key"] for o in s3["client"].list_objects_v2(Bucket="nas")["Contents"]]
    experiment = json.loads((folder / "campaign.json").read_text())["experiment"]
    assert experiment.startswith("s3://nas/campaigns/search-")
    assert any(k.endswith("train.pt") for k in keys)
    assert not (folder / "ray").exists()
    # Optuna (read back from its journal) holds the table's measured values, nothing else
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "optuna.log")))
    trials = [t for s in optuna.get_all_study_summaries(storage)
              for t in optuna.load_study(study_name=s.study_name, storage=storage).trials
              if t.state.name != "RUNNING"]  # fmt: skip
    table = df.set_index("trial_id")
    told = {t.user_attrs["tune_trial_id"]: t for t in trials}
    assert set(told) == set(table.index)
    for trial_id, t in told.items():
        row = table.loc[trial_id]
        assert t.state.name == "COMPLETE"
        assert t.values == [row["val_acc"], row["latency_ms_p50"]]
    # export pulls the trained weights from the bucket
    out = tmp_path / "exported"
    first = trained["trial_id"].iloc[0]
    done = subprocess.run([sys.executable, "-m", "nas.cli", "export", str(folder), "--trial", first,
                           "--out", str(out)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / first / "deploy.pt").is_file()
