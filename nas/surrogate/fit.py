"""``nas surrogate fit``: one scikit-learn model per measured target of a survey, its settings
chosen by cross-validation, its quality measured on rows it never saw.

* Candidates: random forests and gradient-boosted trees (a few depths and leaf sizes), a Gaussian
  process (Matern 5/2 plus white noise, on standardised features) and ridge regression.
* Settings: the candidate whose out-of-fold predictions (``INNER`` folds) rank the rows best
  (Kendall tau; ties: the lower RMSE). Ranking is what a sampler needs from a surrogate.
* Quality: nested cross-validation. For each of ``OUTER`` folds the choice above is made on the
  other rows only and the chosen model predicts the fold; Kendall tau, Spearman rho, RMSE and R^2
  are computed on all those held-out predictions together, tau with a bootstrap 95% interval.
* The model written is chosen the same way on every row and fitted on every row.
* ``params_m``/``MACs`` columns are never modelled: ``nas.surrogate.features`` computes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nas.errors import UserError, did_you_mean
from nas.surrogate.estimators import candidates as _candidates
from nas.surrogate.estimators import fit_estimator as _fit
from nas.surrogate.features import ANALYTIC, analytic_costs, encode, feature_schema
from nas.surrogate.model import FOLDER, Surrogate, recipe, replace_folder
from nas.surrogate.survey import Survey, load_survey
from nas.vocab import COLUMNS

__all__ = [
    "MIN_ROWS",
    "TAU_INFORMATIVE",
    "default_targets",
    "fit_surrogate",
    "assess",
    "ranking_quality",
]

MIN_ROWS = 10  # fewer ok rows cannot give OUTER held-out folds of two rows
OUTER, INNER = 5, 4
TAU_INFORMATIVE = 0.5  # below this held-out Kendall tau a replay is not informative
TARGETS = (*COLUMNS, "val_acc_best")


def _tau(y: np.ndarray, p: np.ndarray) -> float:
    """Kendall tau-b; 0 when either side is constant (no ranking at all)."""
    from scipy.stats import kendalltau

    t = kendalltau(y, p).statistic
    return 0.0 if t is None or math.isnan(t) else float(t)


def _out_of_fold(factory, x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Every row's prediction by a model fitted on the other folds."""
    from sklearn.model_selection import KFold

    pred = np.empty(len(y))
    for train, test in KFold(min(folds, len(y)), shuffle=True, random_state=seed).split(x):
        pred[test] = _fit(factory, x[train], y[train]).predict(x[test])
    return pred


def _choose(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[int, float]:
    """The candidate whose ``INNER``-fold out-of-fold predictions rank best (ties: the lower
    RMSE): its position in ``_candidates`` and its inner tau."""
    scores = []
    for _, _, factory in _candidates(seed):
        pred = _out_of_fold(factory, x, y, INNER, seed)
        scores.append((_tau(y, pred), -float(np.sqrt(np.mean((pred - y) ** 2)))))
    best = max(range(len(scores)), key=lambda i: scores[i])
    return best, scores[best][0]


def _fold(x: np.ndarray, y: np.ndarray, train, test, seed: int) -> tuple[np.ndarray, int]:
    """One outer fold: the model chosen on ``train`` alone predicts ``test``."""
    best, _ = _choose(x[train], y[train], seed)
    factory = _candidates(seed)[best][2]
    return _fit(factory, x[train], y[train]).predict(x[test]), best


def ranking_quality(y: np.ndarray, pred: np.ndarray, *, seed: int = 0, boot: int = 1000) -> dict:
    """Kendall tau (with a bootstrap 95% interval over rows), Spearman rho, RMSE and R^2 of
    predictions against the truth."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    taus = [_tau(y[i], pred[i]) for i in (rng.integers(len(y), size=len(y)) for _ in range(boot))]
    rho = spearmanr(y, pred).statistic
    spread = float(np.sum((y - y.mean()) ** 2))
    return {
        "kendall_tau": _tau(y, pred),
        "kendall_tau_ci95": [float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5))],
        "spearman_rho": 0.0 if math.isnan(rho) else float(rho),
        "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
        "r2": 1.0 - float(np.sum((pred - y) ** 2)) / spread if spread > 0 else 0.0,
        "target_sd": float(np.std(y, ddof=1)) if len(y) > 1 else 0.0,
    }


def assess(problems: dict[str, tuple], seed: int) -> dict[str, tuple]:
    """Per target ``{name: (x, y)}``: nested cross-validation (each outer fold predicted by the
    model chosen without it) and the choice on every row, all targets' jobs side by side on the
    machine's cores. Returns ``{name: (held-out predictions, the model behind each, the chosen
    candidate's position, its inner tau)}``."""
    import os

    from joblib import Parallel, delayed
    from sklearn.model_selection import KFold

    names = [name for name, _, _ in _candidates(seed)]
    folds, jobs = {}, []
    for target, (x, y) in problems.items():
        folds[target] = list(KFold(OUTER, shuffle=True, random_state=seed).split(x))
        jobs += [delayed(_fold)(x, y, train, test, seed) for train, test in folds[target]]
        jobs.append(delayed(_choose)(x, y, seed))
    results = iter(Parallel(n_jobs=min(len(jobs), os.cpu_count() or 1))(jobs))
    out = {}
    for target, (_, y) in problems.items():
        pred, chosen = np.empty(len(y)), [""] * len(y)
        for _, test in folds[target]:
            p, best = next(results)
            pred[test] = p
            for i in test:
                chosen[i] = names[best]
        out[target] = (pred, chosen, *next(results))
    return out


def default_targets(survey: Survey) -> list[str]:
    """The measured columns a replay needs: the space's objectives and constraints that the
    analytic path does not give."""
    wanted = [*survey.objectives, *survey.constraints]
    return [c for c in dict.fromkeys(wanted) if c not in ANALYTIC]


def _check_targets(survey: Survey, targets: Sequence[str]) -> list[str]:
    """The targets to model (analytic ones dropped); one clear error for an unknown one."""
    path = survey.folder / "trials.parquet"
    for t in targets:
        if t not in TARGETS:
            raise UserError(
                f"--target: {t!r} is not a measured column{did_you_mean(t, TARGETS)}; "
                f"allowed: {', '.join(TARGETS)}"
            )
        if t not in survey.table.columns:
            raise UserError(f"--target: {t!r}: {path} has no column {t}")
    return [t for t in targets if t not in ANALYTIC]


def _rows(survey: Survey, target: str) -> np.ndarray:
    """Positions of the ok rows with a finite value of ``target``; too few is one clear error."""
    import pandas as pd

    y = pd.to_numeric(survey.ok[target], errors="coerce").to_numpy(float) if len(survey.ok) else []
    keep = np.flatnonzero(np.isfinite(y))
    if len(keep) < MIN_ROWS:
        raise UserError(
            f"{survey.folder / 'trials.parquet'}: {len(keep)} finished (status ok) rows with "
            f"{target}; the surrogate needs at least {MIN_ROWS} (run a larger survey)"
        )
    return keep


def _design(survey: Survey) -> tuple[list[dict], np.ndarray]:
    """The feature schema and matrix of the survey's ok rows."""
    costs = [analytic_costs(survey.space, p) for p in survey.params]
    bad = [i for i, c in enumerate(costs) if c is None]
    if bad:
        raise UserError(
            f"{survey.folder / 'trials.parquet'}: row {survey.ok['trial_id'][bad[0]]}: its "
            f"param.* values are no valid candidate of {survey.folder / 'space.yaml'}"
        )
    schema = feature_schema(survey.space, survey.params)
    return schema, np.array([encode(schema, p, c) for p, c in zip(survey.params, costs)])


def _result(survey: Survey, target: str, rows, x, y, assessed, seed: int):
    """(model fitted on every row, quality, held-out predictions) of one target."""
    import pandas as pd

    pred, chosen, best, inner = assessed
    name, settings, factory = _candidates(seed)[best]
    quality = {
        "model": name,
        "settings": settings,
        "rows": len(y),
        "folds": OUTER,
        "inner_tau": inner,
        **ranking_quality(y, pred, seed=seed),
    }
    held = pd.DataFrame(
        {
            "trial_id": survey.ok["trial_id"].to_numpy()[rows],
            "target": target,
            "measured": y,
            "held_out": pred,
            "model": chosen,
        }
    )
    return _fit(factory, x, y), quality, held


def fit_surrogate(
    folder: str | Path, targets: Sequence[str] | None = None, *, seed: int = 0
) -> Surrogate:
    """Fit, assess and write ``<folder>/surrogate/`` (see the module docstring); nothing is written
    when the input is refused."""
    import pandas as pd

    survey = load_survey(folder)
    asked = list(targets) if targets else default_targets(survey)
    modelled = _check_targets(survey, asked)
    if not modelled:
        raise UserError(
            f"--target: {', '.join(asked) or 'none'}: nothing to model (params and MACs are "
            "computed exactly); name a measured column such as val_acc"
        )
    rows = {t: _rows(survey, t) for t in modelled}
    schema, x_all = _design(survey)
    data = {
        t: (x_all[r], pd.to_numeric(survey.ok[t], errors="coerce").to_numpy(float)[r])
        for t, r in rows.items()
    }
    assessed = assess(data, seed)
    models, quality, held, recipes = {}, {}, [], {}
    for t in modelled:
        models[t], quality[t], part = _result(survey, t, rows[t], *data[t], assessed[t], seed)
        held.append(part)
        recipes[t] = recipe(assessed[t][2], seed, *data[t])
    surrogate = Surrogate(schema, models, quality, rows=len(survey.ok), recipes=recipes)

    def fill(tmp: Path) -> None:
        surrogate.save(tmp)
        pd.concat(held).to_csv(tmp / "held_out.csv", index=False)

    replace_folder(survey.folder / FOLDER, fill)
    return surrogate
