"""`nas train` and `nas bench` through the CLI: progress lines, divergence, bad names."""

from __future__ import annotations

import subprocess
import sys

import nas
from tests.conftest import ROOT

TINY = nas.Candidate(depths=(1, 1, 1, 1), widths=(8, 16, 32, 64), num_classes=10, image_size=32)


def _nas(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "nas.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


def test_train_prints_one_line_per_epoch(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.to_yaml())
    r = _nas("train", str(path), "--epochs", "2", "--dataset", "digits", "--image-size", "32")
    assert r.returncode == 0, r.stderr
    epochs = [line for line in r.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and all("val_acc=" in line for line in epochs)
    assert float(epochs[-1].split("val_acc=")[1].split()[0]) > 0.2  # 10 classes: learning happened
    assert "status=ok" in r.stdout


def test_train_absurd_learning_rate_diverges(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.to_yaml())
    r = _nas("train", str(path), "--epochs", "2", "--lr", "1e4", "--dataset", "synthetic")
    assert r.returncode == 1
    assert "status=diverged" in r.stdout and ("nan" in r.stdout or "inf" in r.stdout)


def test_bad_inputs_exit_2(tmp_path):
    r = _nas("train", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = _nas("train", str(ROOT / "spaces/presets/convnextv2_atto.yaml"), "--dataset", "mnist")
    assert r.returncode == 2 and "mnist" in r.stderr and "Traceback" not in r.stderr
    r = _nas("bench", "nope")
    assert r.returncode == 2 and "cost" in r.stderr
    r = _nas(
        "survey",
        str(ROOT / "spaces/quickstart.yaml"),
        "--name",
        "x",
        "--runner",
        str(tmp_path / "none.yaml"),
    )
    assert r.returncode == 2 and "none.yaml" in r.stderr
