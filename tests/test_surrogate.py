"""nas.surrogate without Ray: the survey's params read back, the feature schema, the replay's
statistics by hand, one replay run telling Optuna what a campaign tells it, and bad input to
``nas surrogate fit`` and ``nas replay`` (one line, exit 2, nothing written)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nas.cli import main
from nas.surrogate.features import ANALYTIC, analytic_costs, encode, feature_schema
from nas.surrogate.model import Surrogate, _refit, recipe
from nas.surrogate.replay import replay_run, score_runs
from nas.surrogate.stats import beats_random, curve_bands, welch_lower
from nas.surrogate.survey import load_survey
from tests.synthetic_survey import Truth, write_survey


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> Path:
    return write_survey(tmp_path_factory.mktemp("syn") / "s", 24, seed=3)


# ---------------------------------------------------------------------- survey and features
def test_survey_rows_read_back_as_the_params_the_space_sampled(survey):
    from nas.campaign.plan import plan_survey

    s = load_survey(survey)
    plans, _ = plan_survey(s.space, 24, 3)
    assert s.params == [p["params"] for p in plans]  # lists from JSON, ints, bools, strings
    assert isinstance(s.params[0]["depths"], list) and isinstance(s.params[0]["width"], int)


def test_feature_schema_and_encoding(survey):
    s = load_survey(survey)
    schema = feature_schema(s.space, s.params)
    names = [f["name"] for f in schema]
    # numbers: a value column; 3 numeric choices: also one-hot; strings and lists: one-hot only
    assert "width" in names and "width=24" in names and "grn" in names and "grn=true" not in names
    assert 'stage.0.mixer="mixed"' in names and "stage.0.mixer" not in names
    assert "depths=[1, 1, 2, 1]" in names and "depths" not in names
    assert [n for n in names if n in ANALYTIC] == list(ANALYTIC)
    p = {**s.params[0], "width": 24, "stage.0.mixer": "mixed", "grn": True}
    costs = analytic_costs(s.space, p)
    row = dict(zip(names, encode(schema, p, costs)))
    assert row["width"] == 24 and row["width=24"] == 1 and row["width=16"] == 0
    assert row['stage.0.mixer="mixed"'] == 1 and row['stage.0.mixer="static"'] == 0
    assert row["grn"] == 1.0
    assert row["macs_m"] == costs["macs_m"] and row["log(macs_m)"] == math.log(costs["macs_m"])
    # the analytic costs are the campaign's: nas.measure's exact count of the built candidate
    from nas.measure import cost_columns, fast_cost

    exact = cost_columns(fast_cost(s.space.to_sample(p).candidate))
    assert costs == {k: exact[k] for k in ANALYTIC}


def test_conditional_dimensions_have_an_active_column():
    from nas.space.parse import parse_space
    from tests.conftest import PRESETS

    space = parse_space(
        {
            "name": "c",
            "base": str(PRESETS / "convnextv2_atto.yaml"),
            "space": {
                "macro": {"choice": ["plain", "revcol"]},
                "columns": {"choice": [2, 4], "when": {"macro": "revcol"}},
            },
        }
    )
    schema = feature_schema(space, [{"macro": "plain"}, {"macro": "revcol", "columns": 4}])
    names = [f["name"] for f in schema]
    assert names[:4] == ['macro="plain"', 'macro="revcol"', "columns:active", "columns"]
    costs = dict.fromkeys(ANALYTIC, 1.0)
    assert encode(schema, {"macro": "plain"}, costs)[:4] == [1, 0, 0, 0]
    assert encode(schema, {"macro": "revcol", "columns": 4}, costs)[:4] == [0, 1, 1, 4]


# ---------------------------------------------------------------------- statistics
def _table(values: dict[str, np.ndarray], column: str = "hypervolume") -> pd.DataFrame:
    rows = []
    for sampler, m in values.items():
        for seed, run in enumerate(m):
            rows += [
                {"sampler": sampler, "seed": seed, "trial": j + 1, column: v}
                for j, v in enumerate(run)
            ]
    return pd.DataFrame(rows)


def test_bands_and_welch_interval_by_hand():
    a, b = np.array([1.0, 2.0, 4.0, 5.0]), np.array([0.0, 1.0, 1.5])
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert welch_lower(a, b) == pytest.approx(ci.low, rel=1e-12)
    assert welch_lower(a, np.array([7.0])) != welch_lower(a, np.array([7.0]))  # NaN: one seed
    assert welch_lower(np.full(3, 2.0), np.full(3, 1.0)) == 1.0  # no spread: the difference
    bands = curve_bands(_table({"random": np.array([[1.0], [2.0], [4.0], [5.0]])}), "hypervolume")
    half = stats.t.ppf(0.975, 3) * np.std([1, 2, 4, 5], ddof=1) / 2
    assert bands.iloc[0][["mean", "lo", "hi", "n"]].tolist() == pytest.approx(
        [3.0, 3.0 - half, 3.0 + half, 4]
    )


def test_beats_random_is_the_first_trial_from_which_it_stays_above():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 0.01, size=(6, 5))
    ahead = base + np.array([0.0, 1.0, 0.0, 1.0, 1.0])  # above at 2, dips at 3, above from 4
    behind = base - 1.0
    table = _table({"random": base, "tpe": ahead, "nsga2": behind})
    assert beats_random(table, "hypervolume") == {"tpe": 4, "nsga2": None}
    assert beats_random(table, "hypervolume", larger_is_better=False) == {"tpe": None, "nsga2": 1}
    assert beats_random(table[table["sampler"] != "random"], "hypervolume") == {}


# ---------------------------------------------------------------------- one replay run
class _Recording:
    """A stand-in for the campaign's sampler that records what Optuna is told."""

    def __init__(self, seed: int):
        import optuna

        class Sampler(optuna.samplers.RandomSampler):
            told: list = []

            def after_trial(self, study, trial, state, values):
                Sampler.told.append((state.name, values))

        self.sampler = Sampler(seed=seed)


def test_a_replay_tells_optuna_what_a_campaign_tells_it(survey, monkeypatch):
    """Feasible: COMPLETE with the objective values; infeasible (a constraint) or invalid: FAIL
    with none, and the row keeps only what a campaign row would have (costs, no accuracy)."""
    import nas.campaign.search

    recorder = _Recording(0)
    monkeypatch.setattr(nas.campaign.search, "make_sampler", lambda name, seed: recorder.sampler)
    s = load_survey(survey)
    constraints = {"params_m": (0, 0.6)}
    rows = replay_run(s.space, Truth(), "random", 0, 20, constraints)
    told = type(recorder.sampler).told
    assert len(rows) == len(told) == 20
    assert {r["status"] for r in rows} == {"ok", "infeasible"}
    for row, (state, values) in zip(rows, told):
        if row["params_m"] <= 0.6:
            assert row["status"] == "ok" and state == "COMPLETE"
            assert values == [row["val_acc"], row["latency_ms_p50"]]
            assert values == pytest.approx(
                list(Truth().predict(s.space, [json.loads(row["params"])])[0].values())[-2:]
            )
        else:
            assert row["status"] == "infeasible" and state == "FAIL" and values is None
            assert row["val_acc"] is None and row["latency_ms_p50"] is not None
            assert row["reason"].startswith("params_m=")


def test_invalid_proposals_fail_and_runs_are_deterministic(survey):
    s = load_survey(survey)

    class Invalid(Truth):
        def predict(self, space, params):
            return [None for _ in params]  # as Surrogate.predict for a CandidateError

    rows = replay_run(s.space, Invalid(), "tpe", 1, 5, {})
    assert [r["status"] for r in rows] == ["infeasible"] * 5
    assert all(r["val_acc"] is None and r["reason"] == "invalid candidate" for r in rows)
    again = replay_run(s.space, Truth(), "tpe", 7, 15, s.constraints)
    assert again == replay_run(s.space, Truth(), "tpe", 7, 15, s.constraints)


def test_score_runs_hypervolume_and_best_so_far_by_hand(survey):
    from nas.report.pareto import hypervolume

    s = load_survey(survey)
    rows = replay_run(s.space, Truth(), "random", 2, 12, {"params_m": (0, 0.6)})
    reference = {"val_acc": 0.5, "latency_ms_p50": 10.0}
    table = score_runs(pd.DataFrame(rows), s.objectives, reference)
    ok = (table["status"] == "ok").to_numpy()
    points = table[["val_acc", "latency_ms_p50"]].to_numpy(float)
    for j in range(len(table)):
        seen = points[: j + 1][ok[: j + 1]]
        expected = hypervolume(seen, [0.5, 10.0], ["max", "min"]) if len(seen) else 0.0
        assert table["hypervolume"][j] == pytest.approx(expected, rel=1e-12, abs=1e-15)
        best = table["best_val_acc"][j]
        assert (best == points[: j + 1, 0][ok[: j + 1]].max()) if len(seen) else math.isnan(best)


# ---------------------------------------------------------------------- bad input
def _error(capsys, argv) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err and err.count("\n") == 1, err
    return err


def _fake_surrogate(folder: Path, targets=("val_acc", "latency_ms_p50")) -> None:
    """A surrogate folder as nas surrogate fit writes it: ridge regression on two made-up rows."""
    from nas.surrogate.estimators import candidates

    s = load_survey(folder)
    schema = feature_schema(s.space, s.params)
    ridge = [name for name, _, _ in candidates(0)].index("ridge")
    recipes = {t: recipe(ridge, 0, np.zeros((2, len(schema))), [0.0, 1.0]) for t in targets}
    quality = {t: {"kendall_tau": 0.9} for t in targets}
    (folder / "surrogate").mkdir()
    models = {t: _refit(r) for t, r in recipes.items()}
    Surrogate(schema, models, quality, rows=len(s.ok), recipes=recipes).save(folder / "surrogate")


def test_fit_refuses_bad_input_and_writes_nothing(tmp_path, capsys):
    few = write_survey(tmp_path / "few", 8)
    assert "8 finished (status ok) rows with val_acc" in _error(
        capsys, ["surrogate", "fit", str(few)]
    )
    ok = write_survey(tmp_path / "ok", 12)
    err = _error(capsys, ["surrogate", "fit", str(ok), "--target", "val_acc,val_accuracy"])
    assert "'val_accuracy' is not a measured column (did you mean 'val_acc'?)" in err
    err = _error(capsys, ["surrogate", "fit", str(ok), "--target", "train_peak_mb"])
    assert "has no column train_peak_mb" in err
    err = _error(capsys, ["surrogate", "fit", str(ok), "--target", "params_m,macs_m"])
    assert "nothing to model" in err
    manifest = json.loads((ok / "campaign.json").read_text())
    (ok / "campaign.json").write_text(json.dumps({**manifest, "mode": "search"}))
    assert "mode is 'search', expected 'survey'" in _error(capsys, ["surrogate", "fit", str(ok)])
    err = _error(capsys, ["surrogate", "fit", str(tmp_path / "nowhere")])
    assert "not a campaign folder (no such folder)" in err
    for folder in (few, ok):
        assert not (folder / "surrogate").exists()


def test_replay_refuses_bad_input_and_writes_nothing(tmp_path, capsys):
    folder = write_survey(tmp_path / "s", 12)
    err = _error(capsys, ["replay", str(folder)])
    assert "surrogate/model.json: missing; fit the surrogate first" in err
    _fake_surrogate(folder, targets=("val_acc",))
    err = _error(capsys, ["replay", str(folder)])
    assert "no model for latency_ms_p50" in err and "--target val_acc,latency_ms_p50" in err
    (folder / "surrogate" / "model.json").unlink()
    (folder / "surrogate").rename(tmp_path / "old")
    _fake_surrogate(folder)
    err = _error(capsys, ["replay", str(folder), "--samplers", "random,cmaes"])
    assert "'cmaes' is not a sampler; choose from tpe, nsga2, gp, random" in err
    err = _error(capsys, ["replay", str(folder), "--samplers", "tpe,tpe"])
    assert "named twice" in err
    err = _error(capsys, ["replay", str(folder), "--runner", str(tmp_path / "no.yaml")])
    assert "no.yaml: no such file (the runner)" in err
    with pytest.raises(SystemExit) as exit_:  # argparse: a positive integer
        main(["replay", str(folder), "--trials", "0"])
    assert (
        exit_.value.code == 2 and "--trials: expected a positive integer" in capsys.readouterr().err
    )
    assert not (folder / "replay").exists()


# ---------------------------------------------------------------------- no code-executing files
class _Payload:
    """Unpickling this would create ``path`` (as any pickle can run any code)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_pickled_model_is_refused_and_never_unpickled(tmp_path, capsys):
    import pickle

    folder = write_survey(tmp_path / "s", 12)
    _fake_surrogate(folder)
    evidence = tmp_path / "pwned"
    (folder / "surrogate" / "model.pkl").write_bytes(pickle.dumps({"val_acc": _Payload(evidence)}))
    err = _error(capsys, ["replay", str(folder)])
    assert "model.pkl: a pickled surrogate is never loaded" in err, err
    assert not evidence.exists()
    pickle.loads((folder / "surrogate" / "model.pkl").read_bytes())  # the payload is live
    assert evidence.exists()


def test_the_saved_surrogate_is_fitted_again_exactly_and_an_edit_is_refused(tmp_path, capsys):
    """Every model nas surrogate fit can choose (seeded forests, boosting, a GP, ridge), saved as
    its recipe and read back, predicts exactly what the fitted model predicted."""
    from nas.surrogate.estimators import candidates, fit_estimator
    from nas.surrogate.model import load_surrogate

    folder = write_survey(tmp_path / "s", 12)
    s = load_survey(folder)
    schema = feature_schema(s.space, s.params)
    x = np.array([encode(schema, p, analytic_costs(s.space, p)) for p in s.params])
    y = s.ok["val_acc"].to_numpy(float)
    for i, (_, _, factory) in enumerate(candidates(3)):
        fitted = Surrogate(schema, {"val_acc": fit_estimator(factory, x, y)}, {}, len(y))
        fitted.recipes = {"val_acc": recipe(i, 3, x, y)}
        (folder / "surrogate").mkdir(exist_ok=True)
        fitted.save(folder / "surrogate")
        loaded = load_surrogate(folder)
        assert loaded.predict(s.space, s.params) == fitted.predict(s.space, s.params), i
    path = folder / "surrogate" / "model.json"
    doc = json.loads(path.read_text())
    doc["targets"]["val_acc"]["y"][0] += 1.0
    path.write_text(json.dumps(doc))
    err = _error(capsys, ["replay", str(folder)])
    assert "model.json: its SHA-256 does not match its content" in err
    doc["targets"]["val_acc"]["candidate"] = 99
    doc["sha256"] = hashlib.sha256(json.dumps(doc["targets"], sort_keys=True).encode()).hexdigest()
    path.write_text(json.dumps(doc))
    err = _error(capsys, ["replay", str(folder)])
    assert "model.json: targets.val_acc: not a recipe nas surrogate fit writes" in err
    doc["targets"]["val_acc"]["candidate"] = 0
    doc["targets"]["val_acc"]["seed"] = -1  # numpy refuses it: refused before any refit
    doc["sha256"] = hashlib.sha256(json.dumps(doc["targets"], sort_keys=True).encode()).hexdigest()
    path.write_text(json.dumps(doc))
    err = _error(capsys, ["replay", str(folder)])
    assert "model.json: targets.val_acc: not a recipe nas surrogate fit writes" in err
    schema_file = folder / "surrogate" / "schema.json"
    schema_file.write_text(json.dumps({"targets": []}))
    err = _error(capsys, ["replay", str(folder)])
    assert "schema.json: features: expected the list of feature columns" in err
