"""Search wiring: Optuna inside Ray Tune. The define-by-run space, the samplers by name, the
study's storage (a journal file in the campaign folder) and the Tune scheduler (ASHA/HyperBand on
validation accuracy). ``ray`` and ``optuna`` are imported on use."""

from __future__ import annotations

import logging
from pathlib import Path

from nas.campaign.runner import Runner
from nas.errors import UserError
from nas.space.space import Space

__all__ = ["GP_TRIALS", "make_sampler", "make_scheduler", "make_searcher"]

log = logging.getLogger(__name__)


class _DefineByRun:
    """Optuna define-by-run space (picklable, for Tuner.restore): suggests every dimension and
    returns the fixed and derived values as constants."""

    def __init__(self, space: Space):
        self.space = space
        self.constants = {d.name for d in space.dims if d.kind in ("fixed", "derive")}

    def __call__(self, trial) -> dict:
        values = self.space.suggest(trial)
        return {k: v for k, v in values.items() if k in self.constants}


def _optuna_storage(folder: Path):
    """The study lives in ``<campaign>/optuna.log`` (a journal file: open it with
    ``optuna-dashboard``), so a search can be watched live and inspected afterwards."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(folder / "optuna.log")))


# Past this many trials a GP search slows down badly: Optuna's GPSampler refits a Gaussian process
# on every finished trial for each suggestion (cubic in the trials).
GP_TRIALS = 300


def make_sampler(name: str, seed: int, *, planned: int | None = None):
    """The Optuna sampler a campaign searches with, by name (``nas.vocab.SAMPLERS``), seeded;
    ``nas replay`` builds its samplers here too, so a replay runs the campaign's own sampler.

    TPE is multivariate (one joint draw per suggestion, ``group``: the parameters that ``when:``
    conditions switch on or off form their own groups). Optuna's default for several objectives
    is one independent draw per parameter, each of which splits every earlier trial by
    non-domination again: a suggestion costs parameters x trials; multivariate pays the split
    once (``nas bench scale`` measures both). ``planned``: the trials a search plans; a ``gp``
    search of more than ``GP_TRIALS`` is warned about."""
    import optuna

    if name == "gp" and planned is not None and planned > GP_TRIALS:
        log.warning(
            "sampler gp: %d planned trials; Optuna's GP sampler refits on every finished trial "
            "for each suggestion (cubic in the trials) and slows down badly past %d; use tpe or "
            "nsga2 for long searches",
            planned, GP_TRIALS,
        )  # fmt: skip
    samplers = {
        "tpe": lambda: _grouped_tpe(seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    return samplers[name]()


def _grouped_tpe(seed: int):
    """Multivariate, grouped TPE (``make_sampler``), without Optuna's experimental-feature
    warnings on every search: the choice is deliberate, measured by ``nas bench scale``."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


def make_searcher(
    space: Space,
    runner: Runner,
    *,
    folder: Path,
    study_name: str,
    seed: int,
    points=None,
    planned: int | None = None,
):
    """``OptunaSearch`` over the space's objectives (metric/mode stated once, here); ``points``
    (Optuna parameter dicts) are tried first, in order (a funnel's kept candidates)."""
    if not space.objectives:
        raise UserError(f"{space.source}: objectives: search needs at least one objective")
    metrics, modes = list(space.objectives), list(space.objectives.values())
    from nas.campaign.optuna_search import TruthfulOptunaSearch

    return TruthfulOptunaSearch(
        space=_DefineByRun(space),
        metric=metrics if len(metrics) > 1 else metrics[0],
        mode=modes if len(modes) > 1 else modes[0],
        sampler=make_sampler(runner.sampler or space.sampler, seed, planned=planned),
        study_name=study_name,
        storage=_optuna_storage(folder),
        points_to_evaluate=points or None,
    )


def make_scheduler(name: str | None, epochs: int):
    """The runner's trial scheduler on ``val_acc`` per epoch, or None."""
    if not name:
        return None
    from ray.tune.schedulers import ASHAScheduler

    if name != "asha":  # load_runner refuses any other (hyperband: see nas.campaign.runner)
        raise UserError(f"scheduler: expected 'asha', got {name!r}")
    if epochs == 0:
        raise UserError(
            f"scheduler: {name} stops trials by their val_acc per epoch, but train.epochs is 0 "
            "(measure only, no training); remove the runner's scheduler"
        )
    return ASHAScheduler(
        metric="val_acc", mode="max", max_t=epochs, grace_period=1, time_attr="epoch"
    )
