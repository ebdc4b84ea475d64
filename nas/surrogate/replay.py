"""``nas replay``: the campaign's samplers run against a survey's surrogate instead of training.

Each (sampler, seed) is one Ray task (:func:`replay_run`) that does what a ``nas search`` does
with a trial, minus the training:

* the sampler is ``nas.campaign.search.make_sampler(name, seed)``, the study has the space's
  objectives as directions, and every proposal comes from ``Space.suggest`` (define-by-run);
* a proposal that is no valid candidate, or whose analytic or predicted costs break the space's
  constraints, is told to Optuna as FAIL with no values (the campaign's ``infeasible``, see
  ``nas.campaign.optuna_search``); any other is told COMPLETE with its objective values: analytic
  params/MACs, the surrogate's prediction for everything else;
* proposals are asked and told one at a time (a campaign with ``max_concurrent: 1``).

The driver then computes, per run, the hypervolume so far against one reference for every run
(the survey's: its worst measured objective values, widened by 10%) and the best feasible value
of the first maximised objective so far, and writes ``replay/`` (``nas.surrogate.report``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.errors import UserError
from nas.space.space import Space
from nas.surrogate.fit import default_targets
from nas.vocab import COST_COLUMNS, SAMPLERS

__all__ = ["replay_run", "run_replay", "score_runs"]

log = logging.getLogger("nas.progress")


def replay_run(
    space: Space, oracle, sampler: str, seed: int, trials: int, constraints: dict
) -> list[dict[str, Any]]:
    """One sampler, one seed, ``trials`` proposals answered by ``oracle`` (an object with
    ``predict(space, params) -> [values | None]``, such as ``Surrogate``): one row per proposal."""
    import warnings

    import optuna

    from nas.campaign.search import make_sampler
    from nas.measure.candidate import check_constraints

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objectives = dict(space.objectives)
    directions = ["maximize" if s == "max" else "minimize" for s in objectives.values()]
    with warnings.catch_warnings():  # GPSampler and friends warn that they are experimental
        warnings.simplefilter("ignore")
        study = optuna.create_study(directions=directions, sampler=make_sampler(sampler, seed))
        rows = []
        for n in range(1, trials + 1):
            trial = study.ask()
            params = space.suggest(trial)
            values = oracle.predict(space, [params])[0]
            reason = (
                "invalid candidate"
                if values is None
                else "; ".join(check_constraints(values, constraints))
            )
            ok = not reason
            told = [values[c] for c in objectives] if ok else None
            if told is not None and len(told) == 1:
                told = told[0]
            study.tell(
                trial,
                told,
                state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
            )
            rows.append(
                {
                    "sampler": sampler,
                    "seed": seed,
                    "trial": n,
                    "status": "ok" if ok else "infeasible",
                    "reason": reason or None,
                    **_recorded(values, objectives, ok),
                    "params": json.dumps(params, sort_keys=True, default=str),
                }
            )
    return rows


def _recorded(values: dict | None, objectives: dict, ok: bool) -> dict:
    """A proposal's values as a campaign row would have them: everything for a feasible one; for
    an infeasible one only its costs (it would never have been trained), for an invalid one
    nothing."""
    if values is None:
        return dict.fromkeys(objectives)
    return {k: v if ok or k in COST_COLUMNS else None for k, v in values.items()}


def score_runs(table, objectives: dict[str, str], reference: dict[str, float]):
    """``table`` (rows of :func:`replay_run`, any runs) with ``hypervolume`` (of the feasible
    proposals so far, against ``reference``) and ``best_<objective>`` (the best feasible value of
    the first maximised objective so far, NaN before the first feasible proposal)."""
    import pandas as pd

    from nas.report.pareto import hypervolume_over_trials

    first = next((c for c, s in objectives.items() if s == "max"), next(iter(objectives)))
    parts = []
    for _, run in table.groupby(["sampler", "seed"], sort=False):
        run = run.sort_values("trial").copy()
        run["hypervolume"] = hypervolume_over_trials(run, objectives, reference)[
            "hypervolume"
        ].to_numpy()
        value = pd.to_numeric(run[first], errors="coerce").where(run["status"] == "ok")
        best = value.cummax() if objectives[first] == "max" else value.cummin()
        run[f"best_{first}"] = best.ffill()  # NaN until the first feasible proposal
        parts.append(run)
    return pd.concat(parts, ignore_index=True)


def _check(survey, surrogate, samplers: Sequence[str], trials: int, repeats: int) -> None:
    """Every bad input of a replay, before anything starts or is written."""
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown or not samplers:
        raise UserError(
            f"--samplers: {unknown[0] if unknown else 'none given'!r} is not a sampler; "
            f"choose from {', '.join(SAMPLERS)}"
        )
    if len(set(samplers)) != len(samplers):
        raise UserError(f"--samplers: a sampler is named twice in {','.join(samplers)}")
    if trials < 1 or repeats < 1:
        raise UserError(f"--trials {trials} --repeats {repeats}: both must be at least 1")
    if not survey.objectives:
        raise UserError(f"{survey.folder / 'space.yaml'}: objectives: a replay needs at least one")
    missing = [c for c in default_targets(survey) if c not in surrogate.targets]
    if missing:
        raise UserError(
            f"{survey.folder / 'surrogate'}: no model for {missing[0]}, an objective or constraint "
            f"of the space; refit: nas surrogate fit {survey.folder} --target "
            + ",".join(default_targets(survey))
        )


def run_replay(
    folder: str | Path,
    samplers: Sequence[str],
    *,
    trials: int = 30,
    repeats: int = 10,
    seed: int = 0,
    runner_path: str | None = None,
):
    """Replay every sampler ``repeats`` times (seeds ``seed`` .. ``seed + repeats - 1``) on Ray,
    score the runs and write ``<folder>/replay/``; returns the written ``ReplayReport``."""
    from nas.campaign.runner import load_runner
    from nas.report.pareto import pareto_front
    from nas.surrogate.model import load_surrogate
    from nas.surrogate.report import write_replay
    from nas.surrogate.survey import load_survey

    survey = load_survey(folder)
    surrogate = load_surrogate(survey.folder)
    _check(survey, surrogate, samplers, trials, repeats)
    runner = load_runner(runner_path)
    reference = pareto_front(survey.ok, survey.objectives).reference
    started = time.perf_counter()
    rows = _on_ray(runner, survey, surrogate, samplers, trials, [seed + r for r in range(repeats)])
    import pandas as pd

    table = score_runs(pd.DataFrame(rows), survey.objectives, reference)
    settings = {
        "samplers": list(samplers),
        "trials": trials,
        "repeats": repeats,
        "seeds": [seed, seed + repeats - 1],
        "reference": reference,
        "wall_s": time.perf_counter() - started,
    }
    return write_replay(survey, surrogate, table, settings)


def _on_ray(runner, survey, surrogate, samplers, trials, seeds) -> list[dict]:
    """One Ray task per (sampler, seed); a local Ray this call started is shut down after."""
    import ray

    from nas.campaign.cluster import init_ray

    started = not ray.is_initialized()
    init_ray(runner)
    try:
        task = ray.remote(num_cpus=1)(replay_run)
        space, oracle = ray.put(survey.space), ray.put(surrogate)
        constraints = survey.constraints
        slow_first = sorted(samplers, key=lambda name: name != "gp")  # GP asks cost the most
        pending = {
            task.remote(space, oracle, name, s, trials, constraints): (name, s)
            for name in slow_first
            for s in seeds
        }
        done: dict[tuple, list] = {}
        t0 = time.perf_counter()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(ready[0])
            done[key] = ray.get(ready[0])
            feasible = sum(r["status"] == "ok" for r in done[key])
            log.info(
                "replay %s seed %d: %d proposals, %d feasible [%.0fs, %d left]",
                *key,
                trials,
                feasible,
                time.perf_counter() - t0,
                len(pending),
            )
    finally:
        if started:
            ray.shutdown()
    return [row for name in samplers for s in seeds for row in done[(name, s)]]
