"""``nas surrogate fit`` and ``nas replay`` end to end on a local Ray: on a synthetic survey whose
truth is known (the surrogate ranks held-out rows nearly as well as the truth does; the replay
says TPE and NSGA-II beat random where a replay against the truth says so; the random replay is
exactly random draws of the surrogate), and on the real 32-trial digits survey (the report
renders and states the surrogate's quality beside every conclusion)."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.cli import main
from tests.conftest import ROOT
from tests.synthetic_survey import Truth, write_survey

pytestmark = pytest.mark.heavy

BUDGET, SEEDS = 200, 6  # NSGA-II's first generation (population 50) is random: it needs > 50


def _cli(capsys, *argv: str) -> str:
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A 64-row synthetic survey (noise 0.01), its surrogate and a replay of random, TPE and
    NSGA-II (BUDGET proposals x SEEDS seeds) through the CLI."""
    folder = write_survey(tmp_path_factory.mktemp("replay") / "syn", 64, noise=0.01)
    assert main(["surrogate", "fit", str(folder)]) == 0
    argv = ["replay", str(folder), "--samplers", "random,tpe,nsga2"]
    assert main([*argv, "--trials", str(BUDGET), "--repeats", str(SEEDS)]) == 0
    return folder


def test_the_surrogate_ranks_held_out_rows_nearly_as_well_as_the_truth(synthetic):
    from scipy.stats import kendalltau

    from nas.surrogate.survey import load_survey

    survey = load_survey(synthetic)
    quality = json.loads((synthetic / "surrogate" / "quality.json").read_text())
    truth = Truth().predict(survey.space, survey.params)
    for target in ("val_acc", "latency_ms_p50"):
        # the best any model can do: the noise-free truth against the noisy measurements
        best = kendalltau([t[target] for t in truth], survey.ok[target]).statistic
        assert quality[target]["rows"] == 64
        assert best - 0.1 <= quality[target]["kendall_tau"] <= best + 0.05, (target, best)
    held = pd.read_csv(synthetic / "surrogate" / "held_out.csv")
    assert sorted(held["target"].value_counts().to_dict().items()) == [
        ("latency_ms_p50", 64),
        ("val_acc", 64),
    ]


def _truth_replay(folder: Path, samplers) -> pd.DataFrame:
    from nas.report.pareto import pareto_front
    from nas.surrogate.replay import replay_run, score_runs
    from nas.surrogate.survey import load_survey

    s = load_survey(folder)
    rows = [
        row
        for name in samplers
        for seed in range(SEEDS)
        for row in replay_run(s.space, Truth(), name, seed, BUDGET, s.constraints)
    ]
    reference = pareto_front(s.ok, s.objectives).reference
    return score_runs(pd.DataFrame(rows), s.objectives, reference)


def test_replay_finds_tpe_and_nsga2_beat_random_where_the_truth_says_so(synthetic):
    from nas.surrogate.stats import beats_random

    replay = pd.read_csv(synthetic / "replay" / "replay.csv")
    truth = _truth_replay(synthetic, ("random", "tpe", "nsga2"))
    budgets = range(25, BUDGET + 1, 25)

    def verdicts(table):
        return {b: beats_random(table[table["trial"] <= b], "hypervolume") for b in budgets}

    said, found = verdicts(truth), verdicts(replay)
    for sampler in ("tpe", "nsga2"):
        where = [b for b in budgets if said[b][sampler] is not None]
        assert where, f"the truth says {sampler} never beats random within {BUDGET}"
        assert found[where[0]][sampler] is not None, (sampler, where[0], said, found)
        assert found[BUDGET][sampler] is not None
    for table in (truth, replay):  # its first generation is random draws: never before 51
        assert beats_random(table, "hypervolume")["nsga2"] > 50
    summary = json.loads((synthetic / "replay" / "summary.json").read_text())
    assert summary["beats_random_from_trial"]["hypervolume"] == beats_random(replay, "hypervolume")
    assert summary["informative"] is True


def test_the_random_replay_is_random_draws_of_the_surrogate(synthetic):
    """The harness adds nothing: Optuna's RandomSampler with each seed, the surrogate answering,
    the hypervolume of the feasible prefix, by hand, equal the replay's curve."""
    import optuna

    from nas.measure.candidate import check_constraints
    from nas.report.pareto import hypervolume
    from nas.surrogate.model import load_surrogate
    from nas.surrogate.survey import load_survey

    s, surrogate = load_survey(synthetic), load_surrogate(synthetic)
    summary = json.loads((synthetic / "replay" / "summary.json").read_text())
    ref = [summary["reference"][c] for c in s.objectives]
    replay = pd.read_csv(synthetic / "replay" / "replay.csv")
    for seed in range(SEEDS):
        study = optuna.create_study(
            directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=seed)
        )
        feasible, curve = [], []
        for _ in range(BUDGET):
            trial = study.ask()
            values = surrogate.predict(s.space, [s.space.suggest(trial)])[0]
            ok = values is not None and not check_constraints(values, s.constraints)
            study.tell(trial, [values[c] for c in s.objectives] if ok else None,
                       state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL)  # fmt: skip
            feasible += [[values[c] for c in s.objectives]] if ok else []
            curve.append(hypervolume(np.array(feasible), ref, ["max", "min"]) if feasible else 0.0)
        run = replay[(replay["sampler"] == "random") & (replay["seed"] == seed)]
        assert run["trial"].tolist() == list(range(1, BUDGET + 1))
        np.testing.assert_allclose(run["hypervolume"].to_numpy(), curve, rtol=1e-12, atol=1e-15)


IMG = re.compile(r"<img alt='([^']+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>")


def test_digits_survey_end_to_end(tmp_path, capsys):
    """The real 32-trial digits survey (spaces/quickstart.yaml, 6 epochs): fit, replay every
    sampler, and a report that renders, says whether it is informative, and gives the surrogate's
    held-out quality beside every conclusion."""
    folder = tmp_path / "digits32"
    shutil.copytree(ROOT / "tests" / "data" / "digits_survey32", folder)
    out = _cli(capsys, "surrogate", "fit", str(folder))
    assert "val_acc:" in out and "latency_ms_p50:" in out and "computed exactly" in out
    _cli(capsys, "replay", str(folder), "--trials", "20", "--repeats", "3")
    replay = pd.read_csv(folder / "replay" / "replay.csv")
    assert len(replay) == 4 * 3 * 20 and set(replay["sampler"]) == {"random", "tpe", "nsga2", "gp"}
    for _, run in replay.groupby(["sampler", "seed"]):
        assert run["hypervolume"].is_monotonic_increasing
    summary = json.loads((folder / "replay" / "summary.json").read_text())
    taus = [q["kendall_tau"] for q in summary["quality"].values()]
    assert set(summary["quality"]) == {"val_acc", "latency_ms_p50"}
    assert summary["informative"] == (min(taus) >= 0.5)
    html = (folder / "replay" / "report.html").read_text()
    md = (folder / "replay" / "report.md").read_text()
    images = dict(IMG.findall(html))
    assert set(images) == {"replay_hypervolume", "replay_best_val_acc"}
    assert all(base64.b64decode(d).startswith(b"\x89PNG") for d in images.values())
    assert ("NOT INFORMATIVE" in md) == (not summary["informative"])
    sections = md.split("\n## ")[1:]
    conclusions = [s for s in sections if not s.startswith("Limits")]
    assert len(conclusions) == 4 and all("Kendall tau" in s for s in conclusions)
    assert "knows only the region the survey covered" in md
