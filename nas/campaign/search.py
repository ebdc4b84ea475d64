"""Search wiring: Optuna inside Ray Tune. The define-by-run space, the samplers by name, the
study's storage (a journal file in the campaign folder) and the Tune scheduler (ASHA/HyperBand on
validation accuracy). ``ray`` and ``optuna`` are imported on use."""

from __future__ import annotations

from pathlib import Path

from nas.campaign.runner import Runner
from nas.errors import UserError
from nas.space.space import Space

__all__ = ["make_sampler", "make_scheduler", "make_searcher"]


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


def make_sampler(name: str, seed: int):
    """The Optuna sampler a campaign searches with, by name (``nas.vocab.SAMPLERS``), seeded;
    ``nas replay`` builds its samplers here too, so a replay runs the campaign's own sampler."""
    import optuna

    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    return samplers[name]()


def make_searcher(
    space: Space, runner: Runner, *, folder: Path, study_name: str, seed: int, points=None
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
        sampler=make_sampler(runner.sampler or space.sampler, seed),
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
    return ASHAScheduler(
        metric="val_acc", mode="max", max_t=epochs, grace_period=1, time_attr="epoch"
    )
