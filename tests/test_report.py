"""nas.report: Pareto ranks/front against brute force, exact hypervolume, knees and budgets, EDFs
by hand, ablation effects by hand, cost attribution against exact counts. Small synthetic tables."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nas.errors import UserError
from nas.measure.cost import analytic_cost
from nas.report import (
    ablation_effects,
    apply_budgets,
    cost_attribution,
    edf,
    hypervolume,
    hypervolume_over_trials,
    pareto_front,
    pareto_ranks,
    parse_budget,
    parse_objectives,
)
from nas.space.candidate import Candidate, load_candidate
from tests.conftest import PRESETS


# ---------------------------------------------------------------------- objectives and budgets
def test_parse_objectives_forms():
    want = {"val_acc": "max", "latency_ms_p50": "min"}
    assert parse_objectives("val_acc:max, latency_ms_p50:MIN") == want
    assert parse_objectives(["val_acc:max", "latency_ms_p50:min"]) == want
    assert parse_objectives(want) == want
    assert list(parse_objectives("b:min,a:max")) == ["b", "a"]  # order kept


@pytest.mark.parametrize(
    "spec, match",
    [
        ("val_acc:up", "sense 'up' is not allowed; expected 'max' or 'min'"),
        ("val_acc", "expected 'column:max' or 'column:min'"),
        ({"val_acc": "best"}, "sense 'best'"),
        ("a:max,a:min", "'a' is given twice"),
        ("", "none given"),
    ],
)
def test_parse_objectives_errors(spec, match):
    with pytest.raises(UserError, match=match):
        parse_objectives(spec)


def test_parse_budget_forms():
    assert parse_budget("latency_ms_p50<=2") == ("latency_ms_p50", "<=", 2.0)
    assert parse_budget(" params_m < 1.5 ") == ("params_m", "<", 1.5)
    assert parse_budget("val_acc>=.9") == ("val_acc", ">=", 0.9)
    assert parse_budget("macs_m>1e2") == ("macs_m", ">", 100.0)
    assert parse_budget("epochs==3") == ("epochs", "==", 3.0)


@pytest.mark.parametrize("expr", ["latency_ms_p50=<2", "params_m", "params_m<=x", "<=2", "a!=1"])
def test_parse_budget_errors(expr):
    with pytest.raises(UserError, match=r"expected '<column><op><number>' with op one of <=, <"):
        parse_budget(expr)


def test_apply_budgets_nan_fails_and_unknown_column():
    df = pd.DataFrame({"params_m": [1.0, 2.0, None, 0.5], "macs_m": [10, 10, 10, 50]})
    keep = apply_budgets(df, ["params_m<=1.5", ("macs_m", "<", 20)])
    assert keep.tolist() == [True, False, False, False]
    assert apply_budgets(df, []).all()
    assert apply_budgets(df, "params_m<=1.5").tolist() == [True, False, False, True]
    with pytest.raises(UserError, match="budget column 'param_m' is not in the table.*'params_m'"):
        apply_budgets(df, ["param_m<1"])


# ---------------------------------------------------------------------- Pareto ranks and front
def _dominates(a, b, senses) -> bool:
    better = [(x > y if s == "max" else x < y) for x, y, s in zip(a, b, senses)]
    worse = [(x < y if s == "max" else x > y) for x, y, s in zip(a, b, senses)]
    return any(better) and not any(worse)


def _brute_ranks(values, senses) -> list[int]:
    """Peel the non-dominated rows off, one O(n^2) pass per front."""
    ranks = [-1] * len(values)
    rank = 0
    while -1 in ranks:
        left = [i for i, r in enumerate(ranks) if r < 0]
        front = [i for i in left if not any(_dominates(values[j], values[i], senses) for j in left)]
        for i in front:
            ranks[i] = rank
        rank += 1
    return ranks


def test_pareto_ranks_and_front_match_brute_force():
    rng = np.random.default_rng(0)
    deep = 0
    for _ in range(200):
        n, k = int(rng.integers(1, 30)), int(rng.integers(2, 5))
        senses = [str(s) for s in rng.choice(["max", "min"], size=k)]
        values = rng.integers(0, 4, size=(n, k)).astype(float)  # small range: ties, duplicates
        want = _brute_ranks(values.tolist(), senses)
        assert pareto_ranks(values, senses).tolist() == want
        deep += max(want) >= 2

        cols = [f"o{j}" for j in range(k)]
        df = pd.DataFrame(values, columns=cols)
        df["status"] = rng.choice(["ok", "ok", "ok", "ok", "error", "infeasible"], size=n)
        df.loc[rng.random(n) < 0.1, cols[0]] = np.nan
        df.index = [f"t{i}" for i in range(n)]  # labels, not positions
        res = pareto_front(df, dict(zip(cols, senses)))
        ok = (df["status"] == "ok") & df[cols[0]].notna()
        assert res.eligible.tolist() == ok.tolist()
        assert res.rank[~ok].isna().all()
        sub = df.loc[ok, cols].to_numpy().tolist()
        assert res.rank[ok].astype(int).tolist() == _brute_ranks(sub, senses)
        assert set(res.front.index) == set(res.rank.index[res.rank == 0])
        assert (res.front["status"] == "ok").all()
    assert deep > 50  # the tables exercise ranks beyond 1


def test_duplicates_stay_on_the_front_and_front_is_sorted_best_first():
    df = pd.DataFrame(
        {"status": "ok", "acc": [0.9, 0.9, 0.8, 0.95, 0.7], "lat": [2.0, 2.0, 1.0, 3.0, 1.5]}
    )
    res = pareto_front(df, "acc:max,lat:min")
    assert res.rank.tolist() == [0, 0, 0, 0, 1]
    assert res.front.index.tolist() == [3, 0, 1, 2]  # by accuracy, best first


def test_ineligible_rows_never_enter_the_front():
    df = pd.DataFrame(
        {
            "status": ["ok", "error", "infeasible", "ok", "diverged", "ok"],
            "val_acc": [0.5, 0.99, np.nan, np.nan, 0.98, 0.6],
            "latency_ms_p50": [1.0, 0.1, 0.1, 0.1, 0.1, None],
        }
    )
    res = pareto_front(df, {"val_acc": "max", "latency_ms_p50": "min"})
    assert res.eligible.tolist() == [True, False, False, False, False, False]
    assert res.rank.isna().tolist() == [False, True, True, True, True, True]
    assert res.front.index.tolist() == [0] and res.knees == [0] and res.best == 0
    # one eligible row: the reference is widened by 10% of |value| (the range is 0)
    assert res.reference == pytest.approx({"val_acc": 0.45, "latency_ms_p50": 1.1})
    assert res.hypervolume == pytest.approx(0.05 * 0.1)


def test_one_row_table_and_no_eligible_rows():
    one = pd.DataFrame({"status": ["ok"], "val_acc": [0.0], "macs_m": [0.0]})
    res = pareto_front(one, "val_acc:max,macs_m:min")
    assert res.front.index.tolist() == [0] and res.best == 0 and res.knees == [0]
    assert res.reference == {"val_acc": -0.1, "macs_m": 0.1}  # value and range 0: pad 10% of 1.0
    assert res.hypervolume == pytest.approx(0.01)
    none = pd.DataFrame({"status": ["error"], "val_acc": [np.nan], "macs_m": [3.0]})
    res = pareto_front(none, "val_acc:max,macs_m:min")
    assert res.front.empty and res.best is None and res.knees == [] and res.hypervolume == 0.0
    assert hypervolume_over_trials(none, "val_acc:max,macs_m:min")["hypervolume"].tolist() == [0.0]


def test_unknown_objective_column():
    df = pd.DataFrame({"status": ["ok"], "val_acc": [0.5]})
    with pytest.raises(UserError, match="objective column 'val_ac' is not in the table"):
        pareto_front(df, "val_ac:max")


def test_reference_default_and_given():
    df = pd.DataFrame({"status": "ok", "acc": [0.6, 0.8, 1.0], "lat": [1.0, 3.0, 5.0]})
    res = pareto_front(df, "acc:max,lat:min")
    assert res.reference == pytest.approx({"acc": 0.6 - 0.04, "lat": 5.0 + 0.4})
    res = pareto_front(df, "acc:max,lat:min", reference={"acc": 0.0, "lat": 10.0})
    # staircase of (0.6, 1), (0.8, 3), (1.0, 5) under (0, 10): 0.6*9 + 0.2*7 + 0.2*5
    assert res.hypervolume == pytest.approx(0.6 * 9 + 0.2 * 7 + 0.2 * 5)
    with pytest.raises(UserError, match="reference: no value for objective 'lat'"):
        pareto_front(df, "acc:max,lat:min", reference={"acc": 0.0})


def test_knee_of_a_convex_front():
    # (u, v) both minimised, scaled differently: after normalisation (0.2, 0.3) is farthest
    # below the line between the extremes (0, 1) and (1, 0): (1 - 0.5) / sqrt(2).
    u = np.array([0.0, 0.2, 0.5, 1.0]) * 10 + 3
    v = np.array([1.0, 0.3, 0.15, 0.0]) * 100
    df = pd.DataFrame({"status": "ok", "u": u, "v": v, "w": [9.0, 9, 9, 9]})
    assert pareto_front(df, "u:min,v:min").knees == [1]
    # accuracy (max) against cost (min): the same front mirrored
    df["acc"] = -df["u"]
    assert pareto_front(df, "acc:max,v:min").knees == [1]
    # a straight front: every interior member is on the line; the knee is the middle one, and a
    # front of two members (both extremes) has none
    line = pd.DataFrame({"status": "ok", "u": [0.0, 1, 2], "v": [2.0, 1, 0]})
    assert pareto_front(line, "u:min,v:min").knees == [1]
    assert pareto_front(line.iloc[[0, 2]], "u:min,v:min").knees == []
    # equal members (one candidate's seeds) count once: still two distinct members, no knee;
    # with a third distinct member the duplicated one shares the knee
    twins = pd.DataFrame({"status": "ok", "u": [0.0, 0, 2], "v": [2.0, 2, 0]})
    assert pareto_front(twins, "u:min,v:min").knees == []
    assert sorted(
        pareto_front(pd.concat([line, line.iloc[[1]]], ignore_index=True), "u:min,v:min").knees
    ) == [1, 3]
    # 3 objectives: the smallest sum of normalised values
    df3 = pd.DataFrame(
        {"status": "ok", "a": [0, 1, 0.3, 0], "b": [1, 0, 0.3, 0], "c": [0, 0, 0.3, 1.0]}
    )
    assert pareto_front(df3, "a:min,b:min,c:min").knees == [2]


def _knee_by_hand(points: np.ndarray) -> list[int]:
    """The documented rule (``nas.report.pareto._knees``), member by member in plain Python:
    normalise each (minimised) objective over the front, skip members best on some objective
    (unless all are), take the smallest sum of normalised values."""
    cols = list(zip(*points.tolist()))
    lo, hi = [min(c) for c in cols], [max(c) for c in cols]
    norm = [[(x - a) / (b - a) if b > a else 0.0 for x, a, b in zip(p, lo, hi)] for p in points]
    extreme = [any(b > a and x == a for x, a, b in zip(p, lo, hi)) for p in points.tolist()]
    pool = [i for i in range(len(points)) if not extreme[i]] or list(range(len(points)))
    best = min(sum(norm[i]) for i in pool)
    return [i for i in pool if sum(norm[i]) <= best + 1e-12]


def _front_2d(n: int, shape: str, rng) -> np.ndarray:
    """n mutually non-dominated (u, v) points, both minimised, on a convex, concave or wavy
    curve: u increasing, v strictly decreasing."""
    u = np.sort(rng.uniform(0, 10, n))
    t = (u - u[0]) / (u[-1] - u[0])
    v = {"convex": (1 - t) ** 3, "concave": 1 - t**3, "wavy": 1 - t + 0.05 * np.sin(9 * t)}[shape]
    v = v * 50 + np.linspace(1e-6, 0, n)  # strictly decreasing even where the wave is flat
    assert (np.diff(v) < 0).all()
    return np.column_stack([u, v])


@pytest.mark.parametrize("n", [3, 10, 470])
@pytest.mark.parametrize("shape", ["convex", "concave", "wavy"])
def test_knee_marked_on_every_front_of_three_or_more(n, shape):
    rng = np.random.default_rng(n)
    pts = _front_2d(n, shape, rng)
    # accuracy (max) against latency (min), rows shuffled: the front's order is the report's
    order = rng.permutation(n)
    df = pd.DataFrame({"status": "ok", "acc": -pts[order, 0], "lat": pts[order, 1]})
    res = pareto_front(df, "acc:max,lat:min")
    assert len(res.front) == n
    row = np.argsort(order)  # row[i]: the table row holding pts[i]
    want = sorted(int(row[i]) for i in _knee_by_hand(pts))
    assert len(want) >= 1 and sorted(res.knees) == want
    # on a convex front the knee is the member farthest below the chord between the extremes
    if shape == "convex":
        t = (pts - pts.min(0)) / np.ptp(pts, axis=0)
        assert res.knees == [int(row[np.argmin(t.sum(axis=1))])]
    # 3 objectives: a third, constant objective leaves the rule and the knee unchanged
    df["w"] = 1.0
    assert sorted(pareto_front(df, "acc:max,lat:min,w:min").knees) == want


def test_knee_of_a_470_member_front_in_3_objectives():
    rng = np.random.default_rng(3)
    x = rng.dirichlet([1, 1, 1], 470)  # on the simplex: mutually non-dominated
    x = np.sqrt(x)  # concave in places, convex in none: the rule still picks one
    df = pd.DataFrame({"status": "ok", "a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    res = pareto_front(df, "a:min,b:min,c:min")
    assert len(res.front) == 470
    assert sorted(res.knees) == _knee_by_hand(x) and res.knees


def test_best_under_budgets():
    df = pd.DataFrame(
        {
            "status": ["ok", "ok", "ok", "error", "ok"],
            "val_acc": [0.9, 0.85, 0.85, 0.99, 0.95],
            "latency_ms_p50": [3.0, 1.0, 0.5, 0.1, None],
            "params_m": [1.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    obj = "val_acc:max,latency_ms_p50:min"
    assert pareto_front(df, obj).best == 0
    # ties on accuracy broken by the next objective; the failed row never counts
    assert pareto_front(df, obj, budgets=["latency_ms_p50<=2"]).best == 2
    assert pareto_front(df, obj, budgets=["latency_ms_p50<=2", "val_acc>0.86"]).best is None
    assert pareto_front(df, obj, budgets=[("params_m", "<=", 1.0)]).best == 0


# ---------------------------------------------------------------------- hypervolume
def test_hypervolume_by_hand():
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    assert hypervolume(pts, [4, 4], ["min", "min"]) == pytest.approx(3 + 2 + 1)
    # maximisation of both: the same staircase mirrored
    assert hypervolume(-pts, [-4, -4], ["max", "max"]) == pytest.approx(6)
    cube = np.array([[0.0, 0.0, 0.0]])
    assert hypervolume(cube, [2, 3, 4], ["min"] * 3) == pytest.approx(24)
    # two boxes [1,2]^3 (1) and [0,2]x[1.5,2]x[1.5,2] (0.5) overlap in 0.25
    pts3 = np.array([[1.0, 1.0, 1.0], [0.0, 1.5, 1.5]])
    assert hypervolume(pts3, [2, 2, 2], ["min"] * 3) == pytest.approx(1.25)
    # a point not strictly better than the reference in every objective adds nothing
    assert hypervolume(np.array([[4.0, 0.0]]), [4, 4], ["min", "min"]) == 0.0
    assert hypervolume(np.empty((0, 2)), [4, 4], ["min", "min"]) == 0.0


def _grid_volume(points: np.ndarray, ref: int) -> int:
    """Unit cells [c, c + 1)^k of [0, ref)^k dominated by integer points (minimisation)."""
    k = points.shape[1]
    return sum(
        bool((points <= np.array(c)).all(axis=1).any())
        for c in itertools.product(range(ref), repeat=k)
    )


@pytest.mark.parametrize("k", [2, 3, 4])
def test_hypervolume_equals_a_grid_count(k):
    """moocore and the reference HSO, each against counted unit cells."""
    from nas.report.pareto import _hypervolume_hso

    rng = np.random.default_rng(k)
    for _ in range(25):
        n = int(rng.integers(1, 12))
        pts = rng.integers(0, 6, size=(n, k)).astype(float)  # some equal to the reference 5
        senses = [str(s) for s in rng.choice(["max", "min"], size=k)]
        sign = np.where(np.array(senses) == "max", -1.0, 1.0)
        want = _grid_volume(pts, 5)
        got = hypervolume(pts * sign, 5 * sign, senses)
        assert got == pytest.approx(want)
        assert _hypervolume_hso(pts * sign, 5 * sign, senses) == pytest.approx(want)
        # duplicates and dominated points change nothing
        extra = np.vstack([pts, pts[:2], np.minimum(pts[0] + 1, 5)[None]])
        assert hypervolume(extra * sign, 5 * sign, senses) == pytest.approx(want)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_hypervolume_equals_the_reference_hso(k):
    """moocore against the hand-written HSO: random sets with mixed senses, duplicates, dominated
    points and points outside the reference (worse, or equal to it, in some objective)."""
    from nas.report.pareto import _hypervolume_hso

    rng = np.random.default_rng(10 + k)
    outside = 0
    for _ in range(60):
        n = int(rng.integers(1, 40))
        senses = [str(s) for s in rng.choice(["max", "min"], size=k)]
        sign = np.where(np.array(senses) == "max", -1.0, 1.0)
        pts = rng.uniform(0, 1.2, size=(n, k))  # minimisation view; the reference is 1.0
        pts[rng.random((n, k)) < 0.05] = 1.0  # on the reference: adds nothing
        pts = np.vstack([pts, pts[rng.integers(0, n, size=n // 3)]])  # duplicates
        outside += int((pts >= 1.0).any(axis=1).sum())
        ref = np.ones(k)
        want = _hypervolume_hso(pts * sign, ref * sign, senses)
        got = hypervolume(pts * sign, ref * sign, senses)
        assert got == pytest.approx(want, rel=1e-12, abs=0.0)
    assert outside > 100  # the sets do exercise points outside the reference


def test_hypervolume_over_trials_follows_finish_order():
    df = pd.DataFrame(
        {
            "status": ["ok", "ok", "error", "ok"],
            "a": [1.0, 3.0, 0.0, 2.0],
            "b": [1.0, 3.0, 0.0, 2.0],
            "finished_at": [40.0, 10.0, 20.0, 30.0],
        }
    )
    ref = {"a": 4.0, "b": 4.0}
    curve = hypervolume_over_trials(df, "a:min,b:min", reference=ref)
    assert curve.columns.tolist() == ["n_trials", "hypervolume"]
    # finish order: (3, 3) -> 1, failed -> 1, (2, 2) -> 4, (1, 1) -> 9
    assert curve["n_trials"].tolist() == [1, 2, 3, 4]
    assert curve["hypervolume"].tolist() == pytest.approx([1, 1, 4, 9])
    # without finished_at: table order; default reference = the whole table's
    curve = hypervolume_over_trials(df.drop(columns="finished_at"), "a:min,b:min")
    full = pareto_front(df, "a:min,b:min")
    assert curve["hypervolume"].iloc[0] == pytest.approx(full.hypervolume)
    assert np.all(np.diff(curve["hypervolume"]) >= 0)


def test_hypervolume_over_trials_random_tables_end_at_the_front():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        df = pd.DataFrame(
            {
                "status": rng.choice(["ok", "ok", "oom"], size=n),
                "val_acc": rng.random(n),
                "macs_m": rng.integers(1, 5, size=n),
                "params_m": rng.random(n) * 3,
                "finished_at": rng.permutation(n).astype(float),
            }
        )
        obj = "val_acc:max,macs_m:min,params_m:min"
        curve = hypervolume_over_trials(df, obj)
        assert np.all(np.diff(curve["hypervolume"]) >= -1e-12)
        assert curve["hypervolume"].iloc[-1] == pytest.approx(pareto_front(df, obj).hypervolume)


# ---------------------------------------------------------------------- EDFs
def _survey(grn, val_acc, **cols) -> pd.DataFrame:
    return pd.DataFrame(
        {"mode": "survey", "status": "ok", "arch.grn": grn, "val_acc": val_acc, **cols}
    )


def test_edf_by_hand():
    df = _survey(
        [True, True, True, True, False, False, False], [0.9, 0.8, 0.7, 0.6, 0.8, 0.75, 0.5]
    )
    res = edf(df, "grn", bootstrap=0)
    assert res.by == "arch.grn" and res.values == [False, True]
    assert res.x == pytest.approx([0.1, 0.2, 0.25, 0.3, 0.4, 0.5])
    assert res.F[True] == pytest.approx([1 / 4, 2 / 4, 2 / 4, 3 / 4, 1, 1])
    assert res.F[False] == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1])
    assert res.n == {False: 3, True: 4} and res.dropped == {False: 0, True: 0}
    ks = res.ks.iloc[0]
    assert (ks["a"], ks["b"]) == (False, True)
    assert ks["ks"] == pytest.approx(1 / 3)  # at x = 0.4: 1 - 2/3
    want = stats.ks_2samp([0.1, 0.2, 0.3, 0.4], [0.2, 0.25, 0.5])
    assert ks["ks"] == pytest.approx(want.statistic) and ks["pvalue"] == pytest.approx(want.pvalue)
    frame = res.to_frame()
    assert frame.columns.tolist() == ["value", "x", "F", "lo", "hi"] and len(frame) == 12
    # the metric itself instead of the error
    acc = edf(df, "grn", error=False, bootstrap=0)
    assert acc.x == pytest.approx([0.5, 0.6, 0.7, 0.75, 0.8, 0.9])
    assert acc.F[False] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3, 1, 1])


def test_edf_complexity_normalisation_by_hand():
    # log(macs) over [0, log 100] in 3 bins: 1 -> bin 0, 10 -> bin 1, 100 -> bin 2.
    # True: bins [0, 0, 2, 1]; False: bins [0, 2, 2]; only bins 0 and 2 hold both values.
    df = _survey(
        [True, True, True, True, False, False, False],
        [0.9, 0.8, 0.7, 0.6, 0.8, 0.75, 0.5],
        macs_m=[1, 1, 100, 10, 1, 100, 100],
    )
    res = edf(df, "grn", normalize="macs", bins=3, bootstrap=0)
    # weights: True [1/4, 1/4, 1/2, 0] (the bin-1 model dropped); False [1/2, 1/4, 1/4]
    assert res.F[True] == pytest.approx([0.25, 0.5, 0.5, 1, 1, 1])
    assert res.F[False] == pytest.approx([0, 0.5, 0.75, 0.75, 0.75, 1])
    assert res.dropped == {False: 0, True: 1} and res.n == {False: 3, True: 4}
    assert res.ks["ks"].iloc[0] == pytest.approx(0.25)
    assert math.isnan(res.ks["pvalue"].iloc[0])  # no test for weighted EDFs
    with pytest.raises(UserError, match="no macs_m bin"):
        edf(df.assign(macs_m=[1, 1, 1, 1, 100, 100, 100]), "grn", normalize="macs", bins=2)
    with pytest.raises(UserError, match="normalize 'flops' is not allowed"):
        edf(df, "grn", normalize="flops")


@pytest.mark.parametrize("normalize", [None, "params"])
def test_edf_bootstrap_band_contains_the_point_edf(normalize):
    rng = np.random.default_rng(3)
    n = 90
    width = rng.choice([16, 32, 48], size=n)
    df = pd.DataFrame(
        {
            "mode": "survey",
            "status": rng.choice(["ok", "ok", "ok", "error"], size=n),
            "param.width": width,
            "val_acc": np.clip(0.5 + width / 200 + rng.normal(0, 0.1, n), 0, 1).round(2),
            "params_m": width / 10 * np.exp(rng.normal(0, 0.5, n)),
        }
    )
    res = edf(df, "width", normalize=normalize, bins=4, bootstrap=300, seed=1)
    assert res.by == "param.width" and res.values == [16, 32, 48]
    for v in res.values:
        assert np.all(res.lo[v] <= res.F[v] + 1e-9) and np.all(res.F[v] <= res.hi[v] + 1e-9)
        assert np.all(np.diff(res.F[v]) >= -1e-12) and res.F[v][-1] == pytest.approx(1)
    again = edf(df, "width", normalize=normalize, bins=4, bootstrap=300, seed=1)
    assert np.array_equal(again.lo[16], res.lo[16])  # seeded


@pytest.mark.parametrize("normalized", [False, True])
def test_edf_band_in_blocks_equals_the_one_shot_bootstrap(normalized):
    """The band is computed a few resamples at a time (for speed): bit for bit what resampling all
    at once and taking np.nanquantile gives, also when some resamples keep no model (NaN)."""
    from nas.report.edf import _band, _edf_on_grid, _weights

    rng = np.random.default_rng(4)
    n, size, bootstrap = 3000, 40, 200  # 21 resamples per block: 10 blocks
    pos = rng.integers(0, size, n)
    bin_of = np.where(np.arange(n) < 2, 0, rng.integers(1, 3, n)) if normalized else np.zeros(n)
    allowed = np.array([True, False, False]) if normalized else None  # 2 models in bin 0
    bin_of = bin_of.astype(int)
    lo, hi = _band(pos, bin_of, allowed, size, np.random.default_rng(7), bootstrap, 0.9)
    idx = np.random.default_rng(7).integers(0, n, size=(bootstrap, n))
    samples = _edf_on_grid(pos[idx], _weights(bin_of[idx], allowed), size)
    assert np.isnan(samples).any() == normalized  # the NaN path is exercised
    alpha = (1.0 - 0.9) / 2.0
    want_lo, want_hi = np.nanquantile(samples, [alpha, 1.0 - alpha], axis=0)
    assert np.array_equal(lo, want_lo, equal_nan=True) and np.array_equal(
        hi, want_hi, equal_nan=True
    )


def test_edf_groups_per_stage_tuples():
    df = pd.DataFrame(
        {
            "mode": "survey",
            "status": "ok",
            "arch.stage.1.kernel": [7, 7, 3, 3, 7],
            "arch.stage.0.kernel": [3, 3, 3, 3, 7],
            "val_acc": [0.5, 0.6, 0.7, 0.8, 0.9],
        }
    )
    res = edf(df, "stage.kernel", bootstrap=0)
    assert res.by == "stage.kernel" and res.values == ["[3, 3]", "[3, 7]"]  # [7, 7]: one row only
    assert res.n == {"[3, 3]": 2, "[3, 7]": 2}
    one_stage = edf(df, "arch.stage.1.kernel", bootstrap=0)
    assert one_stage.values == [3, 7] and one_stage.n == {3: 2, 7: 3}


def test_edf_refusals():
    df = _survey([True, True, False, False], [0.9, 0.8, 0.7, 0.6])
    with pytest.raises(
        UserError, match=r"mode search, survey: search results are biased by the sampler"
    ):
        edf(df.assign(mode=["survey", "search", "survey", "survey"]), "grn")
    with pytest.raises(
        UserError, match=r"EDF axis 'kernel' is not a column.*axes with >= 2 values: arch.grn"
    ):
        edf(df, "kernel")
    short = df.assign(status=["ok", "ok", "ok", "error"])
    with pytest.raises(
        UserError, match=r"need at least 2 values with >= 2 finished .* found \{False: 1, True: 2\}"
    ):
        edf(short, "grn")


# ---------------------------------------------------------------------- ablations
def _ablate_table() -> pd.DataFrame:
    rows = [
        # axis, axis_value, seed, status, val_acc, macs_m, latency_ms_p50
        ("baseline", None, 0, "ok", 0.80, 100.0, 1.0),
        ("baseline", None, 1, "ok", 0.84, 100.0, 1.2),
        ("columns", "2", 0, "ok", 0.75, 60.0, 0.7),
        ("columns", "2", 1, "ok", 0.81, 60.0, 0.8),
        ("columns", "8", 0, "ok", 0.90, 180.0, 2.0),
        ("columns", "8", 2, "ok", 0.86, 180.0, 2.0),
        ("grn", "false", 0, "ok", 0.70, 99.0, 0.9),
        ("grn", "false", 1, "infeasible", np.nan, 99.0, 0.9),
        ("factorial", "[2, false]", 0, "ok", 0.1, 1.0, 1.0),
    ]
    df = pd.DataFrame(
        rows,
        columns=["axis", "axis_value", "seed", "status", "val_acc", "macs_m", "latency_ms_p50"],
    )
    df["mode"] = "ablate"
    df["arch.columns"] = [4, 4, 2, 2, 8, 8, 4, 4, 2]
    df["arch.grn"] = [True] * 6 + [False, False, False]
    return df


def test_ablation_effects_by_hand():
    eff = ablation_effects(_ablate_table(), metrics=("val_acc", "macs_m", "latency_ms_p50"))
    assert list(zip(eff["axis"], eff["value"], eff["is_baseline"], eff["n"])) == [
        ("columns", 2, False, 2),
        ("columns", 4, True, 2),  # the baseline's own value, from arch.columns
        ("columns", 8, False, 2),
        ("grn", False, False, 2),
        ("grn", True, True, 2),
    ]  # factorial rows skipped
    two, base, eight, no_grn, _ = (eff.iloc[i] for i in range(5))
    t1 = stats.t.ppf(0.975, 1)
    # columns=2, paired by seed: differences -0.05, -0.03
    assert two["d_val_acc"] == pytest.approx(-0.04)
    assert two["ci_val_acc"] == pytest.approx(t1 * np.std([-0.05, -0.03], ddof=1) / math.sqrt(2))
    assert two["val_acc"] == pytest.approx(0.78) and two["baseline_val_acc"] == pytest.approx(0.82)
    assert two["d_val_acc_pct"] == pytest.approx(-0.04 / 0.82 * 100)
    assert two["d_macs_m"] == pytest.approx(-40) and two["ci_macs_m"] == pytest.approx(0)
    assert two["d_latency_ms_p50"] == pytest.approx(-0.35)
    assert two["ci_latency_ms_p50"] == pytest.approx(
        t1 * np.std([-0.3, -0.4], ddof=1) / math.sqrt(2)
    )
    assert (
        base["d_val_acc"] == 0
        and base["ci_val_acc"] == 0
        and base["val_acc"] == pytest.approx(0.82)
    )
    # columns=8 ran seeds 0 and 2: not paired, Welch with 2 degrees of freedom (equal variances)
    assert eight["d_val_acc"] == pytest.approx(0.06)
    assert eight["ci_val_acc"] == pytest.approx(stats.t.ppf(0.975, 2) * math.sqrt(0.0008))
    # grn=false: accuracy from the ok row only (1 seed: no interval); costs from both rows
    assert no_grn["d_val_acc"] == pytest.approx(0.70 - 0.82) and math.isnan(no_grn["ci_val_acc"])
    assert no_grn["d_macs_m"] == pytest.approx(-1) and no_grn["d_macs_m_pct"] == pytest.approx(-1)


def test_ablation_effects_refusals_and_missing_metrics():
    df = _ablate_table()
    with pytest.raises(UserError, match="need an ablate campaign table.*mode survey"):
        ablation_effects(df.assign(mode="survey"))
    with pytest.raises(UserError, match="no baseline rows"):
        ablation_effects(df[df["axis"] != "baseline"])
    eff = ablation_effects(df, metrics=("val_acc", "train_saved_mb"))  # never measured: NaN
    assert eff["d_train_saved_mb"].isna().all() and eff["d_val_acc"].notna().all()


def test_ablation_baseline_value_of_per_stage_axes():
    df = pd.DataFrame(
        {
            "mode": "ablate",
            "axis": ["baseline", "stage.kernel", "width", "depths"],
            "axis_value": [None, "3", "32", "[1, 1, 3, 1]"],
            "seed": 0,
            "status": "ok",
            "val_acc": [0.8, 0.7, 0.9, 0.85],
            **{f"arch.stage.{i}.kernel": [7, 3, 7, 7] for i in range(4)},
            **{
                f"arch.stage.{i}.width": [16 * 2**i, 16 * 2**i, 32 * 2**i, 16 * 2**i]
                for i in range(4)
            },
            **{f"arch.stage.{i}.depth": [1, 1, 1, 3 if i == 2 else 1] for i in range(4)},
        }
    )
    eff = ablation_effects(df, metrics=("val_acc",))
    got = {(a, json.dumps(v)): b for a, v, b in zip(eff["axis"], eff["value"], eff["is_baseline"])}
    assert got == {
        ("stage.kernel", "3"): False,
        ("stage.kernel", "7"): True,
        ("width", "16"): True,
        ("width", "32"): False,
        ("depths", "[1, 1, 1, 1]"): True,
        ("depths", "[1, 1, 3, 1]"): False,
    }


# ---------------------------------------------------------------------- cost attribution
def test_cost_attribution_of_convnextv2_atto():
    c = load_candidate(PRESETS / "convnextv2_atto.yaml")
    out = cost_attribution(candidate=c).set_index("axis")
    assert out.columns.tolist() == ["change", "params_m", "macs_m", "params_pct", "macs_pct"]
    assert set(out.index) == {"stage.kernel", "grn"}  # plain, no re-param branch, no attention
    grn = sum(2 * int(r * w) * d for d, w, r in zip(c.depths, c.widths, c.mlp_ratios))
    assert grn == 14_720 and round(out.loc["grn", "params_m"] * 1e6) == grn
    assert out.loc["grn", "macs_m"] == 0  # fvcore does not count GRN
    total = analytic_cost(c)["params"]
    assert out.loc["grn", "params_pct"] == pytest.approx(100 * grn / total)
    dw = sum((7 * 7 - 3 * 3) * w * d for d, w in zip(c.depths, c.widths))  # depthwise weights
    assert round(out.loc["stage.kernel", "params_m"] * 1e6) == dw
    assert out.loc["stage.kernel", "change"] == "[3, 3, 3, 3] -> [7, 7, 7, 7]"


def test_cost_attribution_reparam_columns_and_mixer():
    replk = load_candidate(PRESETS / "replknet_31b.yaml")
    out = cost_attribution(candidate=replk).set_index("axis")
    cost = analytic_cost(replk)
    assert round(out.loc["reparam", "params_m"] * 1e6) == cost["params"] - cost["params_deploy"] > 0
    assert round(out.loc["reparam", "macs_m"] * 1e6) == cost["macs"] - cost["macs_deploy"]
    revcol = load_candidate(PRESETS / "revcol_t.yaml")
    one = Candidate.from_params({"columns": 1, "inter_supervision": False}, base=revcol)
    out = cost_attribution(candidate=revcol).set_index("axis")
    want = analytic_cost(revcol)["macs"] - analytic_cost(one)["macs"]
    assert round(out.loc["columns", "macs_m"] * 1e6) == want > 0
    mixed = Candidate.from_params({"stage.3.mixer": "dynamic", "head_dim": 32})
    out = cost_attribution(candidate=mixed).set_index("axis")
    static = Candidate.from_params({"stage.3.kernel": 3}, base=Candidate())
    want = analytic_cost(mixed)["params"] - analytic_cost(static)["params"]
    assert round(out.loc["stage.mixer", "params_m"] * 1e6) == want


def test_cost_attribution_from_an_ablate_table():
    df = _ablate_table().assign(params_m=[2.0, 2.0, 1.5, 1.5, 3.0, 3.0, 1.9, 1.9, 1.0])
    out = cost_attribution(df)
    assert out.columns.tolist() == [
        "axis",
        "change",
        "params_m",
        "macs_m",
        "params_pct",
        "macs_pct",
        "latency_ms_p50",
        "latency_pct",
    ]
    assert out["change"].tolist() == ["4 -> 2", "4 -> 8", "True -> False"]
    assert out["params_m"].tolist() == pytest.approx([-0.5, 1.0, -0.1])
    assert out["macs_pct"].tolist() == pytest.approx([-40, 80, -1])
    with pytest.raises(UserError, match="either an ablate table or a candidate"):
        cost_attribution()
    with pytest.raises(UserError, match="either an ablate table or a candidate"):
        cost_attribution(df, candidate=Candidate())


# ---------------------------------------------------------------------- factorial ablations
def _factorial_table() -> pd.DataFrame:
    def cell(grn, method):
        return json.dumps({"grn": grn, "pretrain.method": method})

    rows = [  # axis, axis_value, seed, val_acc, arch.grn, pretrain.method
        ("baseline", None, 0, 0.90, True, "none"),
        ("baseline", None, 1, 0.92, True, "none"),
        ("factorial", cell(False, "none"), 0, 0.85, False, "none"),
        ("factorial", cell(False, "none"), 1, 0.89, False, "none"),
        ("factorial", cell(True, "fcmae"), 0, 0.93, True, "fcmae"),
        ("factorial", cell(True, "fcmae"), 1, 0.95, True, "fcmae"),
        ("factorial", cell(False, "fcmae"), 0, 0.80, False, "fcmae"),
        ("factorial", cell(False, "fcmae"), 1, 0.84, False, "fcmae"),
    ]
    df = pd.DataFrame(
        rows, columns=["axis", "axis_value", "seed", "val_acc", "arch.grn", "pretrain.method"]
    )
    return df.assign(mode="ablate", status="ok")


def test_factorial_cells_and_conditional_effects_by_hand():
    from nas.report.factorial import factorial_cells, factorial_effects

    df = _factorial_table()
    cells = factorial_cells(df)
    got = {(r["grn"], r["pretrain.method"]): r for r in cells.to_dict("records")}
    assert set(got) == {(True, "none"), (False, "none"), (True, "fcmae"), (False, "fcmae")}
    assert got[(True, "none")]["val_acc"] == pytest.approx(0.91)  # the baseline's rows
    assert got[(False, "fcmae")]["n"] == 2
    t1 = stats.t.ppf(0.975, 1)
    assert got[(True, "fcmae")]["ci_val_acc"] == pytest.approx(
        t1 * np.std([0.93, 0.95], ddof=1) / math.sqrt(2)
    )
    eff = factorial_effects(df).set_index(["axis", "given"])
    # GRN off without pre-training: 0.85-0.90, 0.89-0.92 -> mean -0.04; with FCMAE: -0.13, -0.11
    assert eff.loc[("grn", "pretrain.method=none"), "d_val_acc"] == pytest.approx(-0.04)
    assert eff.loc[("grn", "pretrain.method=fcmae"), "d_val_acc"] == pytest.approx(-0.12)
    assert eff.loc[("grn", "pretrain.method=fcmae"), "change"] == "True -> False"
    assert eff.loc[("pretrain.method", "grn=True"), "d_val_acc"] == pytest.approx(0.03)
    assert eff.loc[("pretrain.method", "grn=False"), "d_val_acc"] == pytest.approx(-0.05)
    paired = [0.80 - 0.85, 0.84 - 0.89]  # the same seeds on both sides: a paired interval
    assert eff.loc[("pretrain.method", "grn=False"), "ci_val_acc"] == pytest.approx(
        t1 * np.std(paired, ddof=1) / math.sqrt(2)
    )
    with pytest.raises(UserError, match="factorial effects need rows of nas ablate --factorial"):
        factorial_cells(df[df["axis"] == "baseline"])


def test_the_report_has_factorial_sections_and_says_why_one_factor_ones_are_empty():
    from nas.report.render import _ablation_section, _factorial_sections

    df = _factorial_table()
    cells, effects = _factorial_sections(df)
    assert len(cells.table) == 4 and not cells.unavailable
    assert set(effects.table["axis"]) == {"grn", "pretrain.method"}
    assert "contains 0 is no measured effect" in effects.text
    assert "see Factorial effects" in _ablation_section(df).unavailable
    survey = df.assign(axis=None, mode="survey")
    assert all(s.unavailable for s in _factorial_sections(survey))


def _survey_table(per_value: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 2 * per_value
    return pd.DataFrame(
        {
            "mode": "survey",
            "status": "ok",
            "param.grn": [True, False] * per_value,
            "val_acc": rng.uniform(0.5, 0.9, n),
            "macs_m": rng.uniform(1, 2, n),
            "params_m": rng.uniform(1, 2, n),
        }
    )


@pytest.mark.parametrize("per_value, warned", [(3, True), (12, False)])
def test_edf_legends_give_n_and_small_groups_are_warned_not_ranked(per_value, warned):
    from nas.report.render import _edf_section

    section = _edf_section(_survey_table(per_value))
    (figure,) = section.figures
    assert ("WARNING: too few models to conclude" in figure.caption) is warned
    assert ("not ranked" in figure.caption) is warned
    assert ("largest pairwise KS distance" in figure.caption) is not warned
    assert "n models per value in the legend" in figure.caption
    assert "hundreds" in section.text and ("drawn with a warning" in section.text) is warned


@pytest.mark.parametrize("members, legend", [(3, True), (25, False)])
def test_curves_of_a_large_front_have_no_legend(members, legend):
    from nas.report.plots import CURVES_LEGEND_MAX, plot_curves

    history = json.dumps([{"epoch": 1.0, "val_acc": 0.5}, {"epoch": 2.0, "val_acc": 0.6}])
    front = pd.DataFrame({"trial_id": [f"t{i}" for i in range(members)], "history": history})
    figure = plot_curves(front)
    assert figure.png.startswith(b"\x89PNG")
    said = f"{members} members: no legend above {CURVES_LEGEND_MAX}" in figure.caption
    assert said is not legend
