"""A campaign table mirrored into an Optuna study, for ``optuna-dashboard`` (``nas dashboard``).

Every row becomes one finished Optuna trial, keyed by its ``trial_id`` (a row already mirrored is
never added again): the sampled ``param.*`` values as params (an ablation samples none: its
``arch.*`` values of the space's dimensions), with the distributions of the campaign's space
(``space.yaml``); a value outside the space stays a user attribute; the objectives as values; the status as the trial state
(:data:`STATE_OF_STATUS`); the per-epoch validation accuracy as intermediate values; the other
measured columns as user attributes. Works for every campaign mode (survey, search, ablate) and on
a table that is still growing: :meth:`TableMirror.sync` adds the rows that arrived since its last
call.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from nas.campaign.table import campaign_objectives, campaign_space, read_table, records
from nas.errors import SpaceError, UserError
from nas.space.dims import encode

__all__ = ["STATE_OF_STATUS", "TableMirror", "distributions_of", "trial_of_row"]

log = logging.getLogger(__name__)

# A row's status as an Optuna trial state: trained and measured -> COMPLETE; stopped by the
# scheduler or left out by a funnel's screen -> PRUNED; never trained or failed -> FAIL.
STATE_OF_STATUS = {
    "ok": TrialState.COMPLETE,
    "stopped": TrialState.PRUNED,
    "screened": TrialState.PRUNED,
    "infeasible": TrialState.FAIL,
    "diverged": TrialState.FAIL,
    "oom": TrialState.FAIL,
    "error": TrialState.FAIL,
}
# Cells longer than this (ERF maps, training histories) stay out of the user attributes.
MAX_ATTR_CHARS = 300


def distributions_of(space) -> dict[str, BaseDistribution]:
    """The Optuna distribution of every sampled dimension of a ``Space`` (as ``Space.suggest``
    declares it; fixed and derived dimensions are not sampled)."""
    out: dict[str, BaseDistribution] = {}
    for dim in space.dims:
        if dim.kind == "choice":
            out[dim.name] = CategoricalDistribution([encode(v) for v in dim.values])
        elif dim.kind == "int":
            out[dim.name] = IntDistribution(
                int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log
            )
        elif dim.kind == "float":
            out[dim.name] = FloatDistribution(float(dim.low), float(dim.high), log=dim.log)
    return out


def _param(value: Any, dist: BaseDistribution) -> Any:
    """A table cell as the distribution's value, or None when it is not one of its values."""
    if isinstance(dist, CategoricalDistribution):
        if isinstance(value, str) and value not in dist.choices:
            try:  # lists travel as JSON in the table, the space's choices as canonical JSON
                value = json.loads(value)
            except json.JSONDecodeError:
                return None
        value = encode(value)
        for c in dist.choices:  # True == 1 in Python: a bool matches only a bool
            if c == value and isinstance(c, bool) == isinstance(value, bool):
                return c
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(dist, IntDistribution) and float(value).is_integer():
        value = int(value)
    return value if dist._contains(dist.to_internal_repr(value)) else None  # noqa: SLF001


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value) if isinstance(value, (int, float)) else None


def _intermediate(history: Any) -> dict[int, float]:
    """``history`` (JSON list of per-epoch dicts) -> {epoch: val_acc}."""
    try:
        epochs = json.loads(history) if isinstance(history, str) else history
    except json.JSONDecodeError:
        return {}
    out = {}
    for i, h in enumerate(epochs or []):
        acc = h.get("val_acc") if isinstance(h, dict) else None
        if isinstance(acc, (int, float)) and math.isfinite(acc):
            out[int(h.get("epoch") or i + 1)] = float(acc)
    return out


def _params(row: dict[str, Any], distributions: dict[str, BaseDistribution]):
    """(params, their distributions) of a row: the sampled value of each dimension (a survey's or
    search's row leaves out the dimensions it did not sample, e.g. ``reversible`` of a plain
    net); an ablation samples none, so its architecture's value (``arch.*``) of the dimension."""
    params, dists = {}, {}
    sampled = any(k.startswith("param.") and v is not None for k, v in row.items())
    for name, dist in distributions.items():
        value = row.get(f"param.{name}")
        if value is None and not sampled:  # an ablation: the architecture's value
            value = row.get(f"arch.{name}")
        v = None if value is None else _param(value, dist)
        if v is not None:
            params[name], dists[name] = v, dist
    return params, dists


def _attrs(row: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The measured columns, the ids and any ``param.*`` value outside the space: every cell but
    the params, ``arch.*`` (the candidate, in full), ``history`` (the intermediate values), missing
    values and strings longer than ``MAX_ATTR_CHARS``."""
    out = {}
    for col, value in row.items():
        if col.startswith("arch.") or col == "history" or value is None:
            continue
        if col.startswith("param.") and col.removeprefix("param.") in params:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if not isinstance(value, str) or len(value) <= MAX_ATTR_CHARS:
            out[col] = value
    return out


def trial_of_row(
    row: dict[str, Any],
    objectives: dict[str, str],
    distributions: dict[str, BaseDistribution],
) -> FrozenTrial:
    """One table row (plain values, :func:`nas.campaign.table.records`) as a finished trial."""
    status = row.get("status")
    state = STATE_OF_STATUS.get(status, TrialState.FAIL)
    values = [row.get(c) for c in objectives]
    if state == TrialState.COMPLETE and not all(
        isinstance(v, (int, float)) and math.isfinite(v) for v in values
    ):
        state = TrialState.FAIL  # an objective was not measured: no value to show
    params, dists = _params(row, distributions)
    attrs = _attrs(row, params)
    finish = _time(row.get("finished_at"))
    # a row written for a trial that died before its first report has no started_at; Optuna
    # needs a start for every finished trial
    start = _time(row.get("started_at")) or finish or datetime.now()
    return FrozenTrial(
        number=0,  # the storage numbers the trials it is given
        trial_id=0,
        state=state,
        value=None,
        values=[float(v) for v in values] if state == TrialState.COMPLETE else None,
        datetime_start=start,
        datetime_complete=finish or start,
        params=params,
        distributions=dists,
        user_attrs=attrs,
        system_attrs={},
        intermediate_values=_intermediate(row.get("history")),
    )


class TableMirror:
    """One campaign folder's table, mirrored into the study ``name`` (default: the folder's name)
    of ``storage`` (default: in memory); call :meth:`sync` to add the rows that arrived."""

    def __init__(self, folder: str | Path, *, storage=None, name: str | None = None):
        self.folder = Path(folder)
        if (
            not (self.folder / "trials.parquet").is_file()
            and not (self.folder / "campaign.json").is_file()
        ):
            raise UserError(
                f"{self.folder}: not a campaign folder; expected trials.parquet or campaign.json "
                "written by nas survey|search|ablate"
            )
        self.objectives = campaign_objectives(self.folder)
        try:
            self.distributions = distributions_of(campaign_space(self.folder))
        except (UserError, SpaceError) as e:
            log.warning("%s: params shown as user attributes only (%s)", self.folder, e)
            self.distributions = {}
        self.storage = storage or optuna.storages.InMemoryStorage()
        self.study = optuna.create_study(
            storage=self.storage,
            study_name=name or self.folder.name,
            directions=["maximize" if s == "max" else "minimize" for s in self.objectives.values()],
            load_if_exists=True,
        )
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names(list(self.objectives))
        self.study.set_user_attr("campaign_folder", str(self.folder.resolve()))
        trials = self.study.get_trials(deepcopy=False)
        self.mirrored = {t.user_attrs.get("trial_id") for t in trials} - {None}

    def sync(self) -> int:
        """Add the rows whose ``trial_id`` is not in the study yet; returns how many."""
        df = read_table(self.folder)
        if not len(df):
            return 0
        new = df[~df["trial_id"].astype(str).isin(self.mirrored)]
        added = 0
        for row in records(new):
            self.study.add_trial(trial_of_row(row, self.objectives, self.distributions))
            self.mirrored.add(str(row["trial_id"]))
            added += 1
        return added
