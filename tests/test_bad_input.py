"""Bad input and untrusted files: empty documents, expressions that would hang or eat memory,
campaign names that leave the results folder, pickles that are not CIFAR-10, a campaign.json that
points elsewhere, exports over exports, unknown metric names and campaigns that cannot train
anything. Each: one line, exit 2 (or a UserError in the API), nothing written."""

from __future__ import annotations

import json
import pickle
import time

import numpy as np
import pandas as pd
import pytest

from nas.cli import main
from nas.errors import UserError
from tests.conftest import PRESETS
from tests.test_cli_errors import SPACE, _in_process, _nothing_written


@pytest.mark.parametrize("text", ["", "# only a comment\n", "null\n", "~\n", "---\n"])
def test_empty_documents_are_errors(capsys, tmp_path, text):
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    err = _in_process(capsys, ["validate", str(path)])
    assert f"{path}: <root>: empty document: expected a mapping with keys" in err
    err = _in_process(capsys, ["measure", str(path), "--no-latency"])
    assert f"{path}: empty document: expected a mapping with keys" in err
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    err = _in_process(capsys, ["survey", str(space), "--name", "c", "--runner", str(path),
                               "--results", str(tmp_path / "results")])  # fmt: skip
    assert f"{path}: <root>: empty document: expected a mapping with keys" in err
    _nothing_written(tmp_path / "results")


@pytest.mark.parametrize(
    ("expr", "limit"),
    [
        ("9 ** 9 ** 9", "a power beyond 10**100"),
        ("'a' * 10**8", "longer than 1,000,000 elements"),
        ("[0] * 10**7 + [1]", "longer than 1,000,000 elements"),
        ("-" * 80 + "1", "nested deeper than 50 levels"),
        ("1 + " * 1500 + "1", "characters; the limit is 2,000"),
        ("0.5 ** -10**6", "a power beyond 10**100"),
    ],
    ids=["power", "string", "list", "deep", "long", "small_base"],
)
def test_expressions_that_would_hang_or_eat_memory(capsys, tmp_path, expr, limit):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE + f"  head_dim: {{derive: {json.dumps(expr)}}}\n")
    t0 = time.perf_counter()
    err = _in_process(capsys, ["validate", str(path)])
    assert time.perf_counter() - t0 < 2
    assert "space.head_dim" in err and limit in err


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", ".", "..", "a/b", "", "sp ace"])
def test_campaign_names_stay_inside_the_results_folder(capsys, tmp_path, name):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    results = tmp_path / "results"
    err = _in_process(capsys, ["survey", str(space), "--name", name, "--results", str(results)])
    assert "--name: expected one path component of letters, digits" in err
    _nothing_written(results)
    assert not (tmp_path / "escape").exists()


def test_a_pickle_that_is_no_cifar_batch_is_refused_unexecuted(tmp_path, monkeypatch):
    from nas.train.data import DataConfig, load_data

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        (folder / name).write_bytes(pickle.dumps({b"data": Payload(), b"labels": [0]}))
    with pytest.raises(UserError, match="is not a CIFAR-10 python batch"):
        load_data(DataConfig(dataset="cifar10", path=str(folder)))
    assert not marker.exists()


def test_the_published_cifar_pickle_format_loads(tmp_path):
    """The batches were written by Python 2 / numpy 1 (protocol 2, numpy.core.multiarray)."""
    from nas.train.datasets import read_cifar_batch

    data = np.random.default_rng(0).integers(0, 255, (4, 3072), dtype=np.uint8)
    blob = pickle.dumps({b"data": data, b"labels": [1, 2, 3, 4], b"batch_label": b"x"}, 2)
    blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    x, y = read_cifar_batch(path)
    assert (x == data).all() and y.tolist() == [1, 2, 3, 4]


def test_resume_refuses_an_experiment_outside_the_campaign(capsys, tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "space.yaml").write_text(SPACE)
    manifest = {"campaign": "c", "mode": "survey", "space": str(folder / "space.yaml"),
                "runner": None, "experiment": "/etc/survey-1", "spec": {}}  # fmt: skip
    (folder / "campaign.json").write_text(json.dumps(manifest))
    err = _in_process(capsys, ["resume", str(folder)])
    assert (
        "experiment: /etc/survey-1 is outside the campaign folder and the runner's storage" in err
    )
    assert "--experiment /etc/survey-1" in err


def _exportable(tmp_path):
    from nas.space.candidate import load_candidate

    c = load_candidate(PRESETS / "quickstart_base.yaml")
    row = {"campaign": "c", "mode": "survey", "trial_id": "t1", "candidate_id": c.id,
           "status": "ok", "val_acc": 0.9, **{f"arch.{k}": v for k, v in c.to_params().items()}}  # fmt: skip
    folder = tmp_path / "c"
    folder.mkdir()
    pd.DataFrame([{k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}]
                 ).to_parquet(folder / "trials.parquet")  # fmt: skip
    return folder


def test_export_into_an_existing_export_needs_overwrite(capsys, tmp_path):
    folder, out = _exportable(tmp_path), tmp_path / "out"
    assert main(["export", str(folder), "--trial", "t1", "--out", str(out)]) == 0
    capsys.readouterr()
    (out / "t1" / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in (out / "t1").iterdir()}
    err = _in_process(capsys, ["export", str(folder), "--trial", "t1", "--out", str(out)])
    assert "already holds an export" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in (out / "t1").iterdir()} == before
    assert main(["export", str(folder), "--trial", "t1", "--out", str(out), "--overwrite"]) == 0


def test_an_unknown_metric_is_an_error_listing_the_columns():
    from nas.report import ablation_effects

    df = pd.DataFrame({"axis": ["baseline", "grn"], "axis_value": [None, "false"],
                       "seed": [0, 0], "status": ["ok", "ok"], "val_acc": [0.9, 0.8],
                       "mode": ["ablate", "ablate"], "arch.grn": [True, False]})  # fmt: skip
    with pytest.raises(UserError, match=r"'val_ac' is not in the table \(did you mean 'val_acc'"):
        ablation_effects(df, metrics=("val_ac",))
    assert ablation_effects(df, metrics=("train_saved_mb",))["d_train_saved_mb"].isna().all()


def test_campaigns_that_could_train_nothing_fail_before_running(capsys, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE + "constraints: {params_m: [0, 0.001]}\n")
    results = tmp_path / "results"
    err = _in_process(capsys, ["survey", str(space), "--name", "s", "--results", str(results)])
    assert "constraints: no sample of the space meets params_m in [0, 0.001]" in err
    assert "samples have" in err and "widen the constraints" in err
    err = _in_process(capsys, ["ablate", "spaces/quickstart.yaml", "--name", "a", "--axes", "grn",
                               "--results", str(results)])  # fmt: skip
    assert "constraints.params_m: the ablation baseline (the base of spaces/quickstart.yaml)" in err
    assert "params_m = 3.39, outside [0, 1.5]" in err and "--baseline" in err
    _nothing_written(results)


def test_yaml_bombs_and_anchors_are_bounded(capsys, tmp_path):
    """A billion-laughs document (9**9 values once its aliases are expanded) is refused by size
    before anything walks it; so is a deeply nested one."""
    lol = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi")
    )
    path = tmp_path / "bomb.yaml"
    path.write_text(lol)
    t0 = time.perf_counter()
    err = _in_process(capsys, ["validate", str(path)])
    assert time.perf_counter() - t0 < 2 and "more than 100,000 values" in err
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    err = _in_process(capsys, ["validate", str(path)])
    assert "<yaml>: nested deeper than 40 levels" in err


def test_objectives_the_runner_cannot_measure(capsys, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE + "objectives: {val_acc: max, latency_ms_p50: min}\n")
    runner = tmp_path / "runner.yaml"
    runner.write_text("latency: off\n")
    err = _in_process(capsys, ["search", str(space), "--name", "s", "--runner", str(runner),
                               "--results", str(tmp_path / "results")])  # fmt: skip
    assert (
        "latency_ms_p50 is an objective or constraint, but runner" in err and "latency: off" in err
    )
    space.write_text(SPACE + "constraints: {train_peak_mb: [0, 100]}\n")
    err = _in_process(capsys, ["survey", str(space), "--name", "s",
                               "--results", str(tmp_path / "results")])  # fmt: skip
    assert "train_peak_mb is measured on CUDA only" in err
    _nothing_written(tmp_path / "results")


def test_expression_sum_takes_numbers_only(capsys, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE + '  head_dim: {derive: "len(sum([[0] * 10**6] * 10**4, []))"}\n')
    t0 = time.perf_counter()
    err = _in_process(capsys, ["validate", str(path)])
    assert time.perf_counter() - t0 < 2 and "space.head_dim" in err
