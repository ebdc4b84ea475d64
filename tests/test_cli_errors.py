"""Bad input to the campaign commands, end to end through the CLI: malformed space, runner and
candidate files, an unknown campaign folder for ``nas resume``, an unreachable cluster, flags that
do not fit together. Each: exactly one line on stderr (no traceback), exit code 2, and nothing
written under the results folder. (Space-file errors of ``nas validate`` are in test_cli.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.cli import main
from tests.conftest import PRESETS, ROOT

SPACE = f"""
name: tiny
base: {PRESETS / "convnextv2_atto.yaml"}
data: {{dataset: synthetic, image_size: 32, limit: 64}}
train: {{epochs: 1, batch_size: 32}}
space:
  width: {{choice: [8, 16]}}
  depths: [1, 1, 1, 1]
"""


@pytest.fixture()
def files(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    return tmp_path, space


def _one_line_error(err: str, command: str) -> str:
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"nas {command}: error: "), err
    return err


def _in_process(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    return _one_line_error(err, argv[0])


def _nothing_written(results: Path) -> None:
    assert not results.exists() or not any(results.iterdir()), list(results.rglob("*"))


@pytest.mark.parametrize(
    ("runner_text", "needle"),
    [
        ("name: r\naddress: [oops\n", "YAML syntax error"),
        ("max_failurs: 2\n", "did you mean 'max_failures'"),
        ("cpus_per_trial: -1\n", "cpus_per_trial: expected a positive number"),
        ("latency: sometimes\n", "latency: expected one of"),
        ("- a list\n", "expected a mapping of runner settings"),
        # settings that contradict each other
        ("device: cuda\ngpus_per_trial: 0\n", "device cuda needs gpus_per_trial > 0"),
        (
            "wait_for_resources_s: 0\n",
            "wait_for_resources_s: expected a positive number of "
            "seconds, or null (wait forever), got 0",
        ),
        ("status_interval_s: soon\n", "status_interval_s: expected int or float, got 'soon'"),
        ("scheduler: hyperband\n", "scheduler: hyperband is not supported: Ray's "),
        ("latency: {reference: 3}\n", "latency.reference: expected a candidate YAML path or off"),
        ("latency: {mode: predict}\n", "latency.model: mode predict needs a model"),
        ("latency: {mode: predict, model: no.json}\n", "latency.model: no.json: cannot read"),
        (
            "latency: {reference: nowhere.yaml}\n",
            "latency.reference: nowhere.yaml: cannot read (no such file)",
        ),
        ("latency: {rounds: 2}\n", "latency.rounds: expected an integer >= 3, got 2"),
    ],
    ids=[
        "yaml",
        "unknown_key",
        "negative",
        "bad_choice",
        "not_a_mapping",
        "cuda_without_gpus",
        "wait_zero",
        "interval_text",
        "hyperband",
        "bad_reference",
        "predict_without_model",
        "missing_model",
        "missing_reference",
        "too_few_rounds",
    ],
)
def test_malformed_runner(capsys, files, runner_text, needle):
    tmp, space = files
    runner = tmp / "runner.yaml"
    runner.write_text(runner_text)
    results = tmp / "results"
    argv = ["survey", str(space), "--name", "c", "--runner", str(runner), "--results", str(results)]
    err = _in_process(capsys, argv)
    assert str(runner) in err and needle in err, err
    _nothing_written(results)


def test_malformed_space_in_a_campaign(capsys, files):
    tmp, space = files
    space.write_text(SPACE.replace("choice: [8, 16]", "choice: [8, 16"))
    results = tmp / "results"
    err = _in_process(capsys, ["search", str(space), "--name", "c", "--results", str(results)])
    assert str(space) in err and "YAML syntax error" in err
    _nothing_written(results)


@pytest.mark.parametrize(
    ("candidate_text", "needle"),
    [
        ("kernels: [4, 4, 4, 4]\n", "kernels"),
        ("macro: [unclosed\n", "YAML"),
        ("widthz: [8, 16, 32, 64]\n", "widthz"),
    ],
    ids=["even_kernel", "yaml", "unknown_field"],
)
def test_malformed_candidate(capsys, files, candidate_text, needle):
    tmp, space = files
    baseline = tmp / "candidate.yaml"
    baseline.write_text((PRESETS / "convnextv2_atto.yaml").read_text() + candidate_text)
    results = tmp / "results"
    argv = ["ablate", str(space), "--name", "a", "--baseline", str(baseline), "--axes", "width"]
    err = _in_process(capsys, [*argv, "--results", str(results)])
    assert str(baseline) in err and needle in err, err
    _nothing_written(results)


def test_unknown_axis_does_not_fit_the_space(capsys, files):
    tmp, space = files
    results = tmp / "results"
    argv = ["ablate", str(space), "--name", "a", "--axes", "kernal", "--results", str(results)]
    err = _in_process(capsys, argv)
    assert "--axes: 'kernal' is not a finite dimension" in err and "width" in err
    _nothing_written(results)


def test_resume_unknown_folder(capsys, tmp_path):
    missing = tmp_path / "results" / "nope"
    err = _in_process(capsys, ["resume", str(missing)])
    assert str(missing) in err and "not a campaign folder" in err
    assert not missing.exists()
    half = tmp_path / "results" / "half"  # a folder, but no campaign in it
    half.mkdir(parents=True)
    (half / "notes.txt").write_text("x")
    err = _in_process(capsys, ["resume", str(half)])
    assert "not a campaign folder" in err
    assert sorted(p.name for p in half.iterdir()) == ["notes.txt"]


def test_results_folder_taken_by_a_file(capsys, files):
    tmp, space = files
    taken = tmp / "results"
    taken.write_text("a file, not a folder")
    argv = ["survey", str(space), "--name", "c", "-n", "2", "--results", str(taken)]
    t0 = time.perf_counter()
    err = _in_process(capsys, argv)
    assert time.perf_counter() - t0 < 5  # found before a local Ray is started
    assert str(taken / "c") in err
    assert taken.read_text() == "a file, not a folder"


def test_unreachable_cluster_fails_fast_subprocess(files):
    """A real ``nas survey`` process against addresses where no Ray listens: one line, exit 2,
    nothing written; the line is the reachability probe's, which waits connect_timeout_s (not
    Ray's own retry loop, ~21 s; no hang). No wall-clock bound: those flake on a loaded machine."""
    tmp, space = files
    runner = tmp / "runner.yaml"
    runner.write_text("name: far\naddress: 127.0.0.1:1\nconnect_timeout_s: 2\n")
    results = tmp / "results"
    for address in (None, "127.0.0.9:6379"):  # the profile's; RAY_ADDRESS (loopback only)
        env = dict(os.environ)
        env.pop("RAY_ADDRESS", None)
        if address:
            env["RAY_ADDRESS"] = address  # overrides the profile
        proc = subprocess.run(
            [sys.executable, "-m", "nas.cli", "survey", str(space), "--name", "c", "-n", "2",
             "--runner", str(runner), "--results", str(results)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stdout == ""
        _one_line_error(proc.stderr, "survey")
        assert "cannot reach the Ray cluster at" in proc.stderr
        assert f"cluster at {address or '127.0.0.1:1'} within 2 s" in proc.stderr
        _nothing_written(results)


def _survey_fails(tmp: Path, space: Path, runner: Path) -> str:
    """A real ``nas survey`` process on a private local Ray: exit 2 with one line, returned."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", "survey", str(space), "--name", "c", "-n", "2",
         "--runner", str(runner), "--results", str(tmp / "results")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    return _one_line_error(proc.stderr, "survey")


@pytest.mark.heavy
def test_a_trial_that_fits_no_node_subprocess(files):
    """A runner whose trial needs more CPUs than the (local) cluster has: one line naming the
    runner key and the largest node, exit 2, well within 60 s; no trial started."""
    tmp, space = files
    runner = tmp / "runner.yaml"
    runner.write_text("name: big\nnum_cpus: 1\ncpus_per_trial: 2\nobject_store_mb: 128\n")
    t0 = time.perf_counter()
    line = _survey_fails(tmp, space, runner)
    assert "runner 'big': cpus_per_trial: a trial needs 2 CPU" in line
    assert "the largest of the cluster's 1 node(s) has 1 CPU" in line
    assert time.perf_counter() - t0 < 60
    assert not (tmp / "results" / "c" / "trials.parquet").exists()


def test_a_local_runner_never_oversubscribes_the_machine(files):
    """A typo (cpus_per_trial: 64 for 4) on a local runner: one line naming the key and the
    machine's cores, exit 2, before any Ray starts (it would pretend to have 64 CPUs)."""
    tmp, space = files
    runner = tmp / "runner.yaml"
    cpus = 4 * (os.cpu_count() or 1)
    runner.write_text(f"name: typo\ncpus_per_trial: {cpus}\nobject_store_mb: 128\n")
    line = _survey_fails(tmp, space, runner)
    assert f"runner 'typo': cpus_per_trial: a trial asks for {cpus} CPUs, but this machine " in line
    assert f"has {os.cpu_count()} cores" in line
    _nothing_written(tmp / "results")


@pytest.mark.heavy
def test_a_latency_service_that_leaves_no_room_for_a_trial(files):
    """2 CPUs, 2-CPU trials and a 1-CPU latency service: no trial could ever start."""
    tmp, space = files
    runner = tmp / "runner.yaml"
    runner.write_text("name: tight\nnum_cpus: 2\ncpus_per_trial: 2\nobject_store_mb: 128\n")
    line = _survey_fails(tmp, space, runner)
    assert "runner 'tight': latency: the latency service reserves 1 CPU, 0 GPU" in line


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--prescreen", "4", "--keep", "5", "--by", "synflow"], "--keep: expected 1 <= K <= N"),
        (["--prescreen", "4", "--by", "synflow"], "--keep: a funnel needs --prescreen N"),
        (["--prescreen", "4", "--keep", "2", "--by", "val_acc"], "which the screen does not"),
        (["-n", "2", "--prescreen", "9", "--keep", "3", "--by", "-macs_m"], "exceed the search's"),
    ],
    ids=["keep_over_n", "no_keep", "unmeasured", "keep_over_search"],
)
def test_bad_funnel_flags(capsys, files, flags, needle):
    tmp, space = files
    mode = "search" if "-n" in flags else "survey"
    results = tmp / "results"
    err = _in_process(capsys, [mode, str(space), "--name", "c", "--results", str(results), *flags])
    assert needle in err, err
    _nothing_written(results)


def test_abbreviated_flags_are_refused(capsys, files):
    """``--n 3`` is not ``--name 3`` (nor ``-n 3``): argparse's prefix matching is off."""
    tmp, space = files
    with pytest.raises(SystemExit) as e:
        main(["survey", str(space), "--n", "3", "--name", "c", "--results", str(tmp / "r")])
    assert e.value.code == 2 and "unrecognized arguments: --n 3" in capsys.readouterr().err
    _nothing_written(tmp / "r")


def test_a_survey_funnel_refuses_n(capsys, files):
    tmp, space = files
    argv = ["survey", str(space), "--name", "c", "--results", str(tmp / "r"), "-n", "20",
            "--prescreen", "9", "--keep", "3", "--by", "synflow"]  # fmt: skip
    err = _in_process(capsys, argv)
    assert "-n: a survey funnel trains the --keep 3 best of --prescreen 9" in err
    _nothing_written(tmp / "r")
