"""Tests for the ``nas`` command line: validate, sample, demo, help, exit codes, one-line errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_space import ERROR_CASES, check_message, write_case

from nas.cli import main
from nas.space import load_space
from nas.space.candidate import Candidate

ROOT = Path(__file__).resolve().parents[1]
SEEDS = "spaces/seeds.yaml"
QUICKSTART = "spaces/quickstart.yaml"


def _run(*args: str, seed: str = "0") -> subprocess.CompletedProcess:
    """``nas ARGS`` in a fresh interpreter (as the console script runs it)."""
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run(
        [sys.executable, "-m", "nas.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


# ---------------------------------------------------------------------- validate
def test_validate_seeds_subprocess():
    proc = _run("validate", SEEDS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert out.startswith(f"{SEEDS}: valid space 'seeds' (4 stages, ")
    assert "cardinality: 253,624,320,000 parameter points" in out
    assert "objectives: val_acc (max), latency_ms_p50 (min)" in out
    assert "constraints: params_m in [0, 12]" in out
    assert "stage.3.kernel" in out and "when macro in ['revcol']" in out
    assert "probe: " in out and "/200 random points are valid candidates" in out


def test_validate_in_process(capsys, tmp_path):
    assert main(["validate", QUICKSTART, "--probe", "20"]) == 0
    out, err = capsys.readouterr()
    assert "valid space 'quickstart'" in out and "cardinality: 1,180,980" in out
    assert "probe: 20/20" in out and err == ""
    assert main(["validate", QUICKSTART, "--probe", "0"]) == 0
    assert "probe" not in capsys.readouterr().out
    path = tmp_path / "float.yaml"
    path.write_text("space: {drop_path: {float: [0.0, 0.2]}}\n")
    assert main(["validate", str(path)]) == 0
    assert "cardinality: infinite (float range)" in capsys.readouterr().out


def test_validate_space_without_valid_candidates(capsys, tmp_path):
    path = tmp_path / "none.yaml"
    path.write_text("space: {head_dim: 7, stage: {mixer: dynamic}}\n")
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and f"{path}: space: found only 0 distinct valid" in err


@pytest.mark.parametrize(
    ("case_id", "text", "key_re", "fragments"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_validate_errors_in_process(capsys, tmp_path, case_id, text, key_re, fragments):
    path = write_case(tmp_path, case_id, text)
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err  # exactly one line
    prefix = "nas validate: error: "
    assert err.startswith(prefix)
    check_message(err[len(prefix) : -1], path, key_re, fragments)


SUBPROCESS_CASES = [
    "yaml_syntax",
    "yaml_control_char",
    "even_kernel",
    "missing_file",
    "derive_cycle",
]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_validate_errors_subprocess(tmp_path, case_id):
    _, text, key_re, fragments = next(c for c in ERROR_CASES if c[0] == case_id)
    path = write_case(tmp_path, case_id, text)
    proc = _run("validate", str(path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("nas validate: error: ")
    check_message(lines[0].removeprefix("nas validate: error: "), path, key_re, fragments)


def test_sample_error_is_one_line(capsys, tmp_path):
    path = write_case(tmp_path, "bad", "space: {stage: {kernel: {choice: [4, 7]}}}\n")
    assert main(["sample", str(path), "-n", "3"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"nas sample: error: {path}: space.stage.kernel: ")


# ---------------------------------------------------------------------- sample
def test_sample_table_is_reproducible_across_processes():
    a = _run("sample", SEEDS, "-n", "50", "--seed", "1", seed="1")
    b = _run("sample", SEEDS, "-n", "50", "--seed", "1", seed="2")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout
    lines = a.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "macro", "columns"]
    rows = lines[1:]
    assert len(rows) == 50
    ids = [r.split()[0] for r in rows]
    assert len(set(ids)) == 50 and all(len(i) == 12 for i in ids)
    assert a.stderr.startswith("# 50 distinct candidates from ")
    c = _run("sample", SEEDS, "-n", "50", "--seed", "2")
    assert c.returncode == 0 and c.stdout != a.stdout


def _sample(capsys, *args: str) -> str:
    assert main(["sample", *args]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("# ")
    return out


def test_sample_json(capsys):
    out = _sample(capsys, SEEDS, "-n", "50", "--seed", "1", "--format", "json")
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 50 and len({r["id"] for r in records}) == 50
    space = load_space(SEEDS)
    for r in records:
        assert set(r) == {"id", "params", "candidate", "train", "pretrain"}
        c = Candidate.from_dict(r["candidate"])
        params = {k: v for k, v in r["params"].items() if v is not None}  # None: inactive
        sample = space.to_sample(params)
        assert c == sample.candidate and c.id == sample.candidate.id
        assert c.to_dict() == r["candidate"]
        assert sample.id == r["id"] and sample.train == r["train"]
        assert set(r["train"]) == {"lr"}
    # the same ids as the table
    table = _sample(capsys, SEEDS, "-n", "50", "--seed", "1")
    assert [line.split()[0] for line in table.splitlines()[1:]] == [r["id"] for r in records]


def test_sample_json_ids_are_candidate_ids_without_training_dims(capsys):
    out = _sample(capsys, QUICKSTART, "-n", "20", "--seed", "3", "--format", "json")
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 20
    for r in records:
        assert r["train"] == {}
        assert Candidate.from_dict(r["candidate"]).id == r["id"]


def test_sample_csv(capsys):
    out = _sample(capsys, SEEDS, "-n", "50", "--seed", "1", "--format", "csv")
    df = pd.read_csv(io.StringIO(out), dtype=str)
    assert len(df) == 50 and df["id"].is_unique
    space = load_space(SEEDS)
    columns = ["id"] + [d.name for d in space.dims if not d.name.startswith("vars.")]
    assert list(df.columns) == columns
    assert set(df["macro"]) <= {"plain", "revcol"}
    assert ((df["macro"] == "plain") == (df["columns"] == "-")).all()  # inactive: "-"
    assert set(df["depths"]) <= {"[1,1,2,1]", "[1,1,3,1]", "[2,2,4,2]", "[2,2,6,2]"}
    table = _sample(capsys, SEEDS, "-n", "50", "--seed", "1")
    assert list(df["id"]) == [line.split()[0] for line in table.splitlines()[1:]]


def test_demo_runs_a_campaign_of_the_quickstart_space(monkeypatch, tmp_path, capsys):
    """`nas demo` = a survey campaign (the real campaign is exercised in test_campaign.py);
    here: it passes the right arguments, writes the report of the table and prints both paths."""
    import nas.campaign
    from nas.campaign.table import CampaignTable

    calls = {}

    def fake_run(mode, space, **kw):
        calls.update(mode=mode, space=space, **kw)
        folder = tmp_path / kw["name"]
        folder.mkdir()
        CampaignTable(folder).add(  # a one-row table: what the report is drawn from
            {
                "campaign": "quickstart",
                "mode": "survey",
                "trial_id": "t0",
                "status": "ok",
                "val_acc": 0.9,
                "latency_ms_p50": 1.0,
                "finished_at": 1.0,
            }
        )
        return folder

    monkeypatch.setattr(nas.campaign, "run_campaign", fake_run)
    assert main(["demo", "-n", "3", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert calls["mode"] == "survey" and calls["name"] == "quickstart" and calls["n"] == 3
    assert calls["space"] == "spaces/quickstart.yaml"
    assert f"campaign table: {tmp_path / 'quickstart' / 'trials.parquet'}" in out
    assert f"report: {tmp_path / 'quickstart' / 'report.html'}" in out
    assert "data:image/png;base64," in (tmp_path / "quickstart" / "report.html").read_text()


@pytest.mark.heavy
def test_the_real_demo_trains_well(tmp_path):
    """`nas demo` for real, on four of its candidates (the whole demo is eight; `make demo`):
    the quickstart space's training budget gives a median validation accuracy >= 0.95."""
    import statistics
    import subprocess
    import sys

    from nas.campaign.table import read_table

    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", "demo", "-n", "4", "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = read_table(tmp_path / "quickstart")
    assert len(df) == 4 and (df["status"] == "ok").all()
    assert statistics.median(df["val_acc"]) >= 0.95, df[["candidate_id", "val_acc"]]
    assert "report: " in proc.stdout and (tmp_path / "quickstart" / "report.html").is_file()


# ---------------------------------------------------------------------- help and flags
def test_help_subprocess():
    proc = _run("--help")
    assert proc.returncode == 0 and proc.stderr == ""
    for word in ("validate", "sample", "demo", "usage: nas"):
        assert word in proc.stdout


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ([], ["validate", "sample", "demo", "-h"]),
        (["validate"], ["--probe", "space"]),
        (["sample"], ["-n", "--seed", "--format", "table", "json", "csv"]),
        (["demo"], ["--space", "--runner", "--name", "-n", "--seed", "--results"]),
    ],
)
def test_help(capsys, command, options):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: nas {' '.join(command)}".rstrip())
    for option in options:
        assert option in out, option


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: nas" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["sample", SEEDS, "-n", "0"], "expected a positive integer, got 0"),
        (["sample", SEEDS, "-n", "-3"], "expected a positive integer"),
        (["sample", SEEDS, "-n", "many"], "expected a positive integer, got 'many'"),
        (["sample", SEEDS, "--seed", "x"], "invalid int value"),
        (["sample", SEEDS, "--format", "xml"], "invalid choice: 'xml'"),
        (["sample"], "the following arguments are required: space"),
        (["validate", SEEDS, "--probe", "lots"], "invalid int value"),
        (["validate", SEEDS, "--bogus"], "unrecognized arguments: --bogus"),
        (["demo", "-n", "0"], "expected a positive integer"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_flags_exit_2(capsys, argv, needle):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert needle in err and "Traceback" not in err and out == ""


def test_bad_flag_subprocess():
    proc = _run("sample", SEEDS, "-n", "0")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "expected a positive integer, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_progress_lines_follow_stderr_when_it_is_swapped(monkeypatch):
    """``main`` run twice in one process with stderr swapped (and the first one closed) in
    between: progress lines go to the stderr of the moment, never to a closed stream."""
    import logging

    from nas.cli.main import _progress_to_stderr

    _progress_to_stderr()
    log = logging.getLogger("nas.progress")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log.info("one")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    log.info("two")
    assert second.getvalue().endswith(" two\n")
