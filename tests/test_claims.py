"""Claims: the claims: block's checks, the verdict from the interval (synthetic ablation tables,
intervals by hand), the claim spaces and ``nas claims``, and one tiny claim end to end on Ray."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import t as student_t

from nas.claims import claim_spaces
from nas.cli import main
from nas.errors import SpaceError, UserError
from nas.report.claims import VERDICTS, claim_effects, verdict
from nas.space import load_space
from nas.space.parse import parse_space
from tests.conftest import PRESETS

ROOT = Path(__file__).resolve().parents[1]
DIMS = {"grn": {"choice": [True, False]}, "stage": {"kernel": {"choice": [3, 13], "tie": True}}}


def _claims(*effects: dict, factorial: bool = False):
    block = {"seeds": 3, "factorial": factorial, "effects": list(effects)}
    return parse_space({"space": DIMS, "claims": block}, source="c.yaml").claims


def _effect(**kw) -> dict:
    return {"name": "lk", "axis": "stage.kernel", "treatment": 13, "control": 3,
            "metric": "val_acc", "expect": ">0"} | kw  # fmt: skip


def _row(axis: str, value, seed: int, acc: float, kernel: int = 3, grn: bool = True) -> dict:
    return {"mode": "ablate", "axis": axis, "axis_value": json.dumps(value), "seed": seed,
            "status": "ok", "val_acc": acc, "arch.grn": grn,
            **{f"arch.stage.{i}.kernel": kernel for i in range(4)}}  # fmt: skip


def _one_factor(base: list[float], large: list[float]) -> pd.DataFrame:
    """Baseline kernel 3 and the kernel-13 point, one row per seed."""
    rows = [_row("baseline", None, s, a) for s, a in enumerate(base)]
    rows += [_row("stage.kernel", 13, s, a, kernel=13) for s, a in enumerate(large)]
    return pd.DataFrame(rows)


def _paired(diffs: list[float]) -> tuple[float, float]:
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = student_t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


@pytest.mark.parametrize(
    "large, want",
    [
        ([0.80, 0.82, 0.79], "reproduced"),  # diffs 0.30, 0.31, 0.30: interval above 0
        ([0.40, 0.41, 0.38], "contradicted"),  # diffs -0.10, -0.10, -0.11: below 0
        ([0.60, 0.40, 0.52], "inconclusive at this budget"),  # diffs 0.10, -0.11, 0.03
    ],
)
def test_verdict_from_the_paired_interval_on_synthetic_tables(large, want):
    base = [0.50, 0.51, 0.49]
    table = claim_effects(_one_factor(base, large), _claims(_effect()).effects)
    row = table.iloc[0]
    low, high = _paired([a - b for a, b in zip(large, base)])
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    assert row["effect"] == pytest.approx(sum(large) / 3 - sum(base) / 3)
    assert row["interval"] == "paired t" and row["n"] == 3
    assert row["verdict"] == want and row["reason"] is None


def test_direction_and_margin_mirror_the_verdict():
    assert verdict(0.1, 0.3, ">") == "reproduced"
    assert verdict(0.1, 0.3, "<") == "contradicted"
    assert verdict(-0.3, -0.1, "<") == "reproduced"
    assert verdict(-0.2, 0.1, "<") == "inconclusive at this budget"
    assert verdict(-0.008, 0.004, ">", -0.01) == "reproduced"  # a non-inferiority margin
    assert verdict(-0.03, -0.02, ">", -0.01) == "contradicted"
    assert verdict(0.0, 0.2, ">") == "inconclusive at this budget"  # touching 0: contains it
    assert verdict(math.nan, math.nan, ">") == "not measured"
    assert set(VERDICTS) >= {"reproduced", "contradicted", "inconclusive at this budget"}


def test_a_missing_arm_or_one_seed_is_not_measured():
    df = _one_factor([0.5], [0.7])  # one seed: no interval
    row = claim_effects(df, _claims(_effect()).effects).iloc[0]
    assert row["verdict"] == "not measured" and "needs two of each" in row["reason"]
    only_base = _one_factor([0.5, 0.6, 0.55], [])
    row = claim_effects(only_base, _claims(_effect()).effects).iloc[0]
    assert row["verdict"] == "not measured" and row["n"] == 0


def test_factorial_cells_with_given_and_cell_to_cell_claims():
    rows = []
    accs = {(3, True): [0.5, 0.52, 0.51], (13, True): [0.7, 0.69, 0.72],
            (3, False): [0.5, 0.48, 0.5], (13, False): [0.49, 0.5, 0.47]}  # fmt: skip
    for (k, g), values in accs.items():
        for s, a in enumerate(values):
            axis, value = ("baseline", None) if (k, g) == (3, True) else (
                "factorial", {"grn": g, "stage.kernel": k})  # fmt: skip
            rows.append(_row(axis, value, s, a, kernel=k, grn=g))
    df = pd.DataFrame(rows)
    claims = _claims(
        _effect(name="with-grn", given={"grn": True}),
        _effect(name="without-grn", given={"grn": False}),
        {"name": "cells", "treatment": {"grn": True, "stage.kernel": 13},
         "control": {"grn": False, "stage.kernel": 3}, "metric": "val_acc", "expect": ">0"},
        factorial=True,
    )  # fmt: skip
    t = claim_effects(df, claims.effects).set_index("claim")
    assert t.loc["with-grn", "verdict"] == "reproduced"  # 13 vs the baseline cell (3, grn)
    assert t.loc["with-grn", "effect"] == pytest.approx((2.11 - 1.53) / 3)
    assert t.loc["without-grn", "verdict"] == "inconclusive at this budget"
    assert t.loc["cells", "effect"] == pytest.approx((2.11 - 1.48) / 3)
    assert t.loc["cells", "control"] == "grn=false, stage.kernel=3"


@pytest.mark.parametrize(
    "block, message",
    [
        ({"seeds": 1, "effects": [_effect()]}, "claims.seeds: expected an integer >= 2"),
        ({"effects": []}, "claims.effects: expected a non-empty list"),
        ({"effects": [_effect(axis="stage.kernl")]}, "(did you mean 'stage.kernel'?)"),
        ({"effects": [_effect(treatment=5)]}, "treatment: 5 is not a value of stage.kernel"),
        ({"effects": [_effect(expect="up")]}, "expect: expected '>0', '<0' or a margin"),
        ({"effects": [_effect(metric="val_ac")]}, "unknown metric 'val_ac' (did you mean"),
        ({"effects": [_effect(given={"grn": True})]}, "given: needs claims.factorial: true"),
        ({"effects": [_effect(), _effect()]}, "claim name 'lk' appears twice"),
        ({"effects": [_effect(control=13)]}, "control: equals the treatment"),
        ({"effects": [_effect(colour=1)]}, "effects[0].colour: unknown key"),
        ({"effects": [_effect(axis=["stage.kernel"])]}, "axis: ['stage.kernel'] is not a finite"),
        ({"effects": [_effect(treatment=13.5)]}, "treatment: 13.5 is not a value of stage.kernel"),
        (
            {"factorial": True, "effects": [_effect(given={"grn": 3})]},
            "effects[0].given.grn: 3 is not a value of grn",
        ),
    ],
)
def test_a_bad_claims_block_is_one_line(block, message):
    with pytest.raises(SpaceError) as e:
        parse_space({"space": DIMS, "claims": block}, source="c.yaml")
    assert message in str(e.value) and str(e.value).startswith("c.yaml: claims")
    assert "\n" not in str(e.value)


def test_the_claim_spaces_parse_and_name_their_axes(capsys):
    paths = claim_spaces(root=ROOT / "spaces" / "claims")
    assert {p.stem for p in paths} == {"replknet_kernels", "replknet_small_kernel",
                                       "container_mixing", "convnextv2_grn_fcmae",
                                       "revcol_columns"}  # fmt: skip
    for p in paths:
        claims = load_space(p).claims
        assert claims.seeds >= 3 and claims.effects
    assert load_space(ROOT / "spaces/claims/revcol_columns.yaml").claims.axes == [
        "columns",
        "width",
    ]
    with pytest.raises(UserError, match=r"unknown claim 'replknet_kernel' \(did you mean"):
        claim_spaces(["replknet_kernel"], root=ROOT / "spaces" / "claims")
    assert main(["claims", "nope", "--root", str(ROOT / "spaces" / "claims")]) == 2
    assert "claims: unknown claim 'nope'" in capsys.readouterr().err


TINY = f"""
name: tiny_claim
base: {PRESETS / "convnextv2_atto.yaml"}
data: {{dataset: synthetic, image_size: 32, limit: 256}}
train: {{epochs: 1, batch_size: 64}}
measure: {{proxies: false}}
objectives: {{val_acc: max}}
space:
  width: 8
  depths: [1, 1, 1, 1]
  stage:
    kernel: {{choice: [3, 7], tie: true}}
claims:
  seeds: 2
  effects:
    - {{name: k7, axis: stage.kernel, treatment: 7, control: 3, metric: val_acc, expect: ">0"}}
"""
RUNNER = "name: test\ncpus_per_trial: 1\nmax_concurrent: 2\nobject_store_mb: 128\nlatency: off\n"


@pytest.mark.heavy
def test_a_tiny_claim_end_to_end_on_local_ray(tmp_path):
    import ray

    from nas.campaign import init_ray
    from nas.campaign.runner import Runner
    from nas.campaign.table import read_table
    from nas.claims import run_claims

    space, runner = tmp_path / "tiny.yaml", tmp_path / "runner.yaml"
    space.write_text(TINY)
    runner.write_text(RUNNER)
    init_ray(Runner(num_cpus=2, object_store_mb=128))
    try:
        (run,) = run_claims([space], results=str(tmp_path), runner_path=str(runner),
                            progress=False)  # fmt: skip
        df = read_table(run.folder)
        assert len(df) == 4 and set(df["status"]) == {"ok"}  # baseline (kernel 7) + kernel 3
        row = run.table.iloc[0]
        assert row["claim"] == "k7" and row["n"] == 2 and row["interval"] == "paired t"
        assert row["verdict"] in VERDICTS[:3] and math.isfinite(row["effect"])
        assert "synthetic, 32 px, 256 images, 1 epochs, 2 seeds" == run.budget
        report = (run.folder / "report.md").read_text()
        assert "## Claims" in report and row["verdict"] in report
        (again,) = run_claims([space], results=str(tmp_path), runner_path=str(runner),
                              progress=False)  # fmt: skip
        assert len(read_table(again.folder)) == 4  # resumed: nothing ran twice
        assert again.table["effect"].tolist() == run.table["effect"].tolist()
    finally:
        ray.shutdown()


def test_a_survey_of_a_claim_space_reports_without_a_claims_section(tmp_path):
    """Every table has an ``axis`` column (None outside ablations): only an ablate table is
    compared arm against arm; a survey of the same space is reported without the section."""
    from nas.report.claims import claims_section

    (tmp_path / "space.yaml").write_text(
        (ROOT / "spaces" / "claims" / "replknet_kernels.yaml")
        .read_text()
        .replace("base: ../presets/", f"base: {PRESETS}/")
    )
    survey = pd.DataFrame([{**_row("baseline", None, s, 0.5), "mode": "survey", "axis": None}
                           for s in range(3)])  # fmt: skip
    section = claims_section(survey, tmp_path)
    assert section.unavailable and "not an ablation" in section.unavailable
    ablation = _one_factor([0.5, 0.6, 0.55], [0.7, 0.8, 0.75])
    section = claims_section(ablation, tmp_path)
    assert (
        not section.unavailable and section.table["claim"].tolist()[0] == "large-kernels-accuracy"
    )
