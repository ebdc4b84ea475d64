"""nas dashboard: a survey and an ablation table mirrored into an Optuna study and served by the
real optuna-dashboard on a free 127.0.0.1 port; its HTTP API lists one trial per row, with the
state of each row's status, also for rows that arrive while it runs."""

from __future__ import annotations

import json
import math
import select
import shutil
import sys
import time
import urllib.request

import pandas as pd
import pytest

from nas.campaign.table import CampaignTable, read_table, records
from nas.cli.dashboard import _loopback
from nas.cli.main import main
from nas.report.dashboard import STATE_OF_STATUS, TableMirror
from nas.vocab import STATUSES
from tests.conftest import ROOT, nas_process

SURVEY = ROOT / "tests" / "data" / "digits_survey32"
API_STATE = {"COMPLETE": "Complete", "PRUNED": "Pruned", "FAIL": "Fail"}

pytest.importorskip("optuna_dashboard", reason="optuna-dashboard: pip install 'nas[dashboard]'")


def _ablation_rows() -> list[dict]:
    """The survey's rows as an ablation's (no ``param.*``: an ablation samples nothing), one
    baseline and one-factor rows, with every status of the vocabulary (no accuracy where the
    trial did not finish training)."""
    rows = []
    for i, row in enumerate(records(read_table(SURVEY))[:16]):
        row = {k: v for k, v in row.items() if not k.startswith("param.")}
        status = STATUSES[i % len(STATUSES)]
        row.update(mode="ablate", status=status, trial_id=f"abl_{i:05d}", seed=i % 2)
        row.update(axis="baseline" if i < 2 else "grn", axis_value=None if i < 2 else "true")
        if status not in ("ok", "stopped"):
            row.update(val_acc=None, history=None)
        rows.append(row)
    return rows


@pytest.fixture
def ablation(tmp_path):
    folder = tmp_path / "abl"
    folder.mkdir()
    shutil.copy(SURVEY / "space.yaml", folder)
    manifest = json.loads((SURVEY / "campaign.json").read_text())
    manifest.update(campaign="abl", mode="ablate")
    (folder / "campaign.json").write_text(json.dumps(manifest))
    return folder


def _start(folder, *flags):
    """``nas dashboard FOLDER --port 0``; (process, base URL) once it serves."""
    proc = nas_process("dashboard", str(folder), "--port", "0", *flags)
    deadline, lines = time.monotonic() + 60, []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            lines.append(line)
            if "http://127.0.0.1:" in line:
                return proc, line.split("http://")[1].split("/dashboard")[0]
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"nas dashboard did not start: {''.join(lines)}{proc.stdout.read()}")


def _get(base: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{base}{path}", timeout=30) as r:
        return json.loads(r.read())


def _study(base: str) -> dict:
    studies = _get(base, "/api/studies")["study_summaries"]
    assert len(studies) == 1
    return _get(base, f"/api/studies/{studies[0]['study_id']}?after=0")


def _by_trial_id(study: dict) -> dict[str, dict]:
    out = {}
    for t in study["trials"]:
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        assert attrs["trial_id"] not in out, f"trial {attrs['trial_id']} mirrored twice"
        out[attrs["trial_id"]] = t | {"attrs": attrs}
    return out


def _stop(proc) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def test_every_status_has_a_trial_state():
    assert set(STATE_OF_STATUS) == set(STATUSES)


@pytest.mark.heavy  # a dashboard process (~8 s on 2 loaded cores)
def test_survey_served_one_trial_per_row():
    df = read_table(SURVEY)
    proc, base = _start(SURVEY)
    try:
        study = _study(base)
    finally:
        _stop(proc)
    assert study["directions"] == ["maximize", "minimize"]
    trials = _by_trial_id(study)
    assert sorted(trials) == sorted(df["trial_id"])
    for row in records(df):
        t = trials[row["trial_id"]]
        assert t["state"] == "Complete"  # every row of this survey is ok
        assert t["values"] == pytest.approx([row["val_acc"], row["latency_ms_p50"]])
        params = {p["name"]: p["param_external_value"] for p in t["params"]}
        assert params["width"] == str(row["param.width"]) and "grn" in params
        assert float(t["attrs"]["macs_m"]) == pytest.approx(row["macs_m"])  # a measured column


@pytest.mark.heavy  # a dashboard process (~10 s on 2 loaded cores)
def test_ablation_mirrored_as_rows_arrive(ablation):
    rows = _ablation_rows()
    table = CampaignTable(ablation)
    for row in rows[:6]:
        table.add(row)
    proc, base = _start(ablation, "--interval", "0.2")
    try:
        assert len(_study(base)["trials"]) == 6
        for row in rows[6:]:  # the campaign goes on: rows land in the journal, then a rewrite
            table.add(row)
        table.add(rows[0])  # a row written again (same trial id) is not a new trial
        deadline = time.monotonic() + 30
        while len(_study(base)["trials"]) < len(rows) and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(1.0)  # a few more syncs: nothing is added twice
        trials = _by_trial_id(_study(base))
    finally:
        _stop(proc)
    assert sorted(trials) == sorted(r["trial_id"] for r in rows)
    for row in rows:
        t = trials[row["trial_id"]]
        assert t["state"] == API_STATE[STATE_OF_STATUS[row["status"]].name], row["status"]
        if row["status"] == "ok":
            assert t["values"] == pytest.approx([row["val_acc"], row["latency_ms_p50"]])
        params = {p["name"]: p["param_external_value"] for p in t["params"]}
        assert params["grn"] == str(row["arch.grn"])  # from arch.*: an ablation samples none
        assert t["attrs"]["status"] == row["status"] and t["attrs"]["axis"] == row["axis"]


def test_mirror_sync_adds_each_row_once(ablation):
    rows = _ablation_rows()
    table = CampaignTable(ablation)
    mirror = TableMirror(ablation)
    assert mirror.sync() == 0  # a campaign with no row yet
    for row in rows[:5]:
        table.add(row)
    assert mirror.sync() == 5 and mirror.sync() == 0
    for row in rows[5:]:
        table.add(row)
    assert mirror.sync() == len(rows) - 5
    trials = mirror.study.get_trials()
    assert [t.user_attrs["trial_id"] for t in trials] == [r["trial_id"] for r in rows]
    ok = next(t for t in trials if t.user_attrs["status"] == "ok")
    assert ok.intermediate_values and all(0 <= v <= 1 for v in ok.intermediate_values.values())
    assert not any(k.startswith("arch.") or k == "history" for t in trials for k in t.user_attrs)


def test_dashboard_refusals(tmp_path, capsys, monkeypatch):
    assert main(["dashboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a campaign folder" in err and str(tmp_path) in err
    with pytest.raises(SystemExit) as e:
        main(["dashboard", str(SURVEY), "--port", "70000"])
    assert e.value.code == 2 and "--port: expected a port number" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # as if not installed
    assert main(["dashboard", str(SURVEY)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'nas[dashboard]'" in err


def test_loopback_hosts():
    assert _loopback("127.0.0.1") and _loopback("localhost") and _loopback("::1")
    assert not _loopback("0.0.0.0") and not _loopback("192.0.2.7") and not _loopback("myhost")


def test_survey_params_equal_the_table():
    df = read_table(SURVEY)
    mirror = TableMirror(SURVEY)
    mirror.sync()
    for t, row in zip(mirror.study.get_trials(), records(df)):
        assert t.params["depths"] == json.dumps(
            json.loads(row["param.depths"]), separators=(",", ":")
        )
        cols = pd.Series(row)
        if isinstance(row.get("param.columns"), float) and not math.isnan(row["param.columns"]):
            assert t.params["columns"] == cols["param.columns"]
        else:
            assert "columns" not in t.params  # a plain macro has no columns


def test_survey_rows_carry_only_their_sampled_params():
    mirror = TableMirror(SURVEY)
    mirror.sync()
    for t, row in zip(mirror.study.get_trials(), records(read_table(SURVEY))):
        sampled = {k.removeprefix("param.") for k, v in row.items()
                   if k.startswith("param.") and v is not None
                   and not (isinstance(v, float) and math.isnan(v))}  # fmt: skip
        assert set(t.params) <= sampled  # never an arch.* value a survey did not sample


def test_a_row_of_a_trial_that_died_before_its_first_report(ablation):
    """The callback's fallback row (a worker that died before reporting) has no started_at."""
    row = _ablation_rows()[0] | {"status": "error", "val_acc": None, "history": None}
    row.pop("started_at", None)
    CampaignTable(ablation).add(row)
    mirror = TableMirror(ablation)
    assert mirror.sync() == 1
    (t,) = mirror.study.get_trials()
    assert t.state.name == "FAIL" and t.datetime_start is not None
