"""Campaign planning without Ray: survey acceptance, ablation points, runner profiles."""

from __future__ import annotations

import json

import pytest

import nas
from nas.campaign.plan import _axis_values, plan_ablation, plan_survey
from nas.campaign.runner import load_runner
from nas.errors import SpaceError, UserError
from nas.measure.cost import analytic_cost
from tests.conftest import ROOT


def test_survey_plans_are_distinct_and_inside_constraints():
    space = nas.load_space(ROOT / "spaces/quickstart.yaml")
    plans, stats = plan_survey(space, 10, seed=0)
    ids = [nas.Candidate.from_dict(p["candidate"]).id for p in plans]
    assert len(set(ids)) == 10
    assert 0 < stats["acceptance_rate"] <= 1
    for p in plans:
        cost = analytic_cost(nas.Candidate.from_dict(p["candidate"]))
        assert cost["params"] / 1e6 <= 1.5 and cost["macs"] / 1e6 <= 60


def test_ablation_points_per_stage_axis_and_dedupe():
    space = nas.load_space(ROOT / "spaces/quickstart.yaml")
    base = space.base  # kernel 7 everywhere, grn on
    assert _axis_values(space, "stage.kernel") == [3, 7, 13]
    plans = plan_ablation(space, base, ["stage.kernel", "grn"], seeds=2, seed=5)
    axes = [(p["axis"], p["axis_value"]) for p in plans]
    # kernel 7 and grn=true equal the baseline: they are the baseline's trials
    assert sorted(set(axes)) == [
        ("baseline", None),
        ("grn", "false"),
        ("stage.kernel", "13"),
        ("stage.kernel", "3"),
    ]
    assert len(plans) == 4 * 2 and sorted({p["seed"] for p in plans}) == [5, 6]
    k3 = next(p for p in plans if p["axis_value"] == "3")
    assert nas.Candidate.from_dict(k3["candidate"]).kernels == (3, 3, 3, 3)
    with pytest.raises(UserError, match="not a finite dimension"):
        plan_ablation(space, base, ["stage.nope"], seeds=1, seed=0)


def test_factorial_plan():
    space = nas.load_space(ROOT / "spaces/quickstart.yaml")
    plans = plan_ablation(
        space, space.base, ["grn", "stage.kernel"], seeds=1, seed=0, factorial=True
    )
    assert len(plans) == 2 * 3  # the baseline point is one of the 6 combinations
    cells = [json.loads(p["axis_value"]) for p in plans if p["axis"] == "factorial"]
    assert {"grn", "stage.kernel"} == set(cells[0])  # an {axis: value} object per cell
    assert len({json.dumps(c, sort_keys=True) for c in cells}) == len(cells) == 5


def test_factorial_plan_over_a_pretraining_axis():
    space = nas.load_space(ROOT / "spaces/fcmae_grn.yaml")
    plans = plan_ablation(
        space, space.base, ["grn", "pretrain.method"], seeds=2, seed=0, factorial=True
    )
    assert len(plans) == 4 * 2  # 2 x 2 cells (one of them the baseline) x 2 seeds
    by_cell = {(p["axis_value"], p["seed"]): p for p in plans}
    fcmae_off = by_cell[(json.dumps({"grn": False, "pretrain.method": "fcmae"}), 0)]
    assert fcmae_off["pretrain"] == {"method": "fcmae"}
    assert nas.Candidate.from_dict(fcmae_off["candidate"]).grn is False
    baseline = [p for p in plans if p["axis"] == "baseline"]
    assert len(baseline) == 2 and all(p["pretrain"] == {} for p in baseline)


def test_runner_profiles_load_and_errors(tmp_path):
    for name in ("local", "gpu", "cluster"):
        load_runner(ROOT / "runners" / f"{name}.yaml")
    bad = tmp_path / "r.yaml"
    bad.write_text("cpus_per_trail: 2\n")
    with pytest.raises(
        SpaceError,
        match=r"r.yaml: cpus_per_trail: unknown runner key \(did you mean 'cpus_per_trial'\?\)",
    ):
        load_runner(bad)
    bad.write_text("latency: sometimes\n")
    with pytest.raises(SpaceError, match="latency: expected one of"):
        load_runner(bad)
    bad.write_text("device: cuda\n")
    with pytest.raises(SpaceError, match="gpus_per_trial"):
        load_runner(bad)
