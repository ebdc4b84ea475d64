"""Funnel campaigns: screen N candidates (fast costs + zero-cost proxies, Ray tasks), train the K
best by an expression, record the others as ``screened`` rows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nas.campaign.funnel import Funnel, parse_funnel, select
from nas.campaign.table import read_table
from nas.errors import UserError
from nas.space.expr import Expr
from tests.conftest import PRESETS

SPACE = f"""
name: funnel
base: {PRESETS / "convnextv2_atto.yaml"}
data: {{dataset: synthetic, image_size: 32}}
train: {{epochs: 1, batch_size: 64}}
measure: {{proxy_batch: 16}}
objectives: {{val_acc: max, macs_m: min}}
space:
  width: {{choice: [8, 12, 16, 20, 24]}}
  depths: [1, 1, 1, 1]
  grn: {{choice: [true, false]}}
  stage:
    kernel: {{choice: [3, 5, 7]}}
"""
RUNNER = "name: test\ncpus_per_trial: 1\nmax_concurrent: 2\nobject_store_mb: 128\nlatency: off\n"


@pytest.mark.parametrize(
    "flags, expected",
    [
        ((40, None, "synflow"), "--keep: a funnel needs --prescreen N, --keep K and --by EXPR"),
        ((4, 5, "synflow"), "--keep: expected 1 <= K <= N (--prescreen), got --prescreen 4"),
        ((40, 4, "val_acc"), "--by: 'val_acc' reads 'val_acc', which the screen does not measure"),
        ((40, 4, "synflow +"), "--by: invalid expression"),
        ((40, 4, "exp(synflow)"), "--by: unknown function 'exp'"),
    ],
)
def test_bad_funnel_flags_are_one_line(flags, expected):
    with pytest.raises(UserError) as e:
        parse_funnel(*flags)
    assert str(e.value).startswith(expected) and "\n" not in str(e.value)


def test_select_keeps_the_k_largest_finite_scores_in_order():
    values = [
        {"synflow": v, "macs_m": 10 - i} for i, v in enumerate([3.0, math.nan, 9.0, 1.0, 9.0])
    ]
    out = select(values, Funnel(5, 2, "synflow"))
    assert [o["screen_kept"] for o in out] == [False, False, True, False, True]
    assert [o["screen_rank"] for o in out] == [3, None, 1, 4, 2]  # ties: the earlier first
    assert "not a finite number" in out[1]["screen_note"] and out[2]["screen_note"] is None
    assert out[0]["screen_note"] == "screened out: synflow = 3, rank 3 of 4 (kept the best 2)"
    cheap = select(values, Funnel(5, 1, "-macs_m"))
    assert [o["screen_kept"] for o in cheap] == [False] * 4 + [True]


@pytest.fixture()
def files(tmp_path) -> tuple[Path, Path]:
    (tmp_path / "space.yaml").write_text(SPACE)
    (tmp_path / "runner.yaml").write_text(RUNNER)
    return tmp_path / "space.yaml", tmp_path / "runner.yaml"


@pytest.mark.heavy
def test_a_survey_funnel_trains_exactly_the_k_best(files, tmp_path, capsys):
    from nas.cli.main import main

    space, runner = files
    args = ["survey", str(space), "--runner", str(runner), "--name", "f", "--results",
            str(tmp_path / "r"), "--prescreen", "40", "--keep", "4", "--by", "synflow", "--quiet"]  # fmt: skip
    assert main(args) == 0
    df = read_table(tmp_path / "r" / "f")
    assert len(df) == 40 and df["candidate_id"].is_unique
    trained, screened = df[df["status"] != "screened"], df[df["status"] == "screened"]
    assert len(trained) == 4 and len(screened) == 36 and (trained["status"] == "ok").all()
    assert trained["val_acc"].notna().all() and screened["val_acc"].isna().all()
    # the 4 trained are the best 4 by the expression, over the values the table records
    score = df.apply(lambda r: Expr("synflow")({"synflow": r["synflow"]}), axis=1)
    assert set(df.loc[score.nlargest(4).index, "trial_id"]) == set(trained["trial_id"])
    assert (score == df["screen_score"]).all() and sorted(trained["screen_rank"]) == [1, 2, 3, 4]
    assert screened["reason"].str.startswith("screened out: synflow = ").all()
    assert screened["screen_s"].gt(0).all() and screened["macs_m"].gt(0).all()
    # a trained row's own proxies (measured in the trial) are the screen's values
    assert all(math.isfinite(v) for v in trained["naswot"])
    # the same command again: nothing is screened or trained twice
    assert main(args) == 0
    assert len(read_table(tmp_path / "r" / "f")) == 40
    assert main(["report", str(tmp_path / "r" / "f")]) == 0
    html = (tmp_path / "r" / "f" / "report.html").read_text()
    assert "Screened 40 candidates by synflow" in html


@pytest.mark.heavy
def test_a_search_funnel_starts_from_the_kept_candidates(files, tmp_path):
    from nas.cli.main import main

    space, runner = files
    args = ["search", str(space), "--runner", str(runner), "--name", "s", "--results",
            str(tmp_path / "r"), "-n", "4", "--prescreen", "12", "--keep", "2", "--by", "-macs_m",
            "--epochs", "1", "--quiet", "--seed", "3"]  # fmt: skip
    assert main(args) == 0
    df = read_table(tmp_path / "r" / "s")
    screened = df[df["status"] == "screened"]
    trained = df[df["status"] != "screened"]
    assert len(screened) == 10 and len(trained) == 4
    cheapest = screened["macs_m"].min()
    # the two kept (cheapest) candidates are trained, first: no screened one is cheaper
    first_two = trained.sort_values("started_at").head(2)
    assert (first_two["macs_m"] <= cheapest).all()
    # their rows carry the screen's columns, and the screen used the seed the trials use (the
    # search's training seed, not --seed): the values it ranked are the trials' own
    assert sorted(first_two["screen_rank"]) == [1, 2]
    assert (first_two["screen_score"] == -first_two["macs_m"]).all()
    assert set(screened["seed"]) == set(trained["seed"]) == {0}
