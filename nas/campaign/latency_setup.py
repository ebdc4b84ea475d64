"""A campaign's latency settings beyond the protocol: the reference candidate of ``latency_rel``
and the latency model of ``mode: predict``, resolved on the driver (they travel with the trial
spec: workers never read the driver's files), and the latency columns a runner can fill."""

from __future__ import annotations

from typing import Any

from nas.campaign.runner import Runner
from nas.errors import SpaceError, UserError

__all__ = ["check_latency_columns", "latency_model_data", "latency_reference", "latency_spec"]

_TIMED = ("latency_ms_p50", "latency_ms_p90", "latency_rel")


def latency_reference(runner: Runner, base: Any, *, source: str) -> dict[str, Any]:
    """The reference candidate (``Candidate.to_dict()``) of a campaign's latency: the runner's
    ``latency.reference`` file, else ``base`` (the space's base candidate); ``{}`` when off."""
    from nas.space.candidate import CandidateError, load_candidate

    if runner.latency_reference == "off" or runner.latency in ("off", "predict"):
        return {}
    if runner.latency_reference is None:
        return base.to_dict()
    try:
        return load_candidate(runner.latency_reference).to_dict()
    except CandidateError as e:
        raise SpaceError(source, "latency.reference", str(e).removeprefix("<file>: ")) from None


def latency_model_data(runner: Runner, *, source: str) -> dict[str, Any]:
    """The runner's latency model (``mode: predict``) as JSON data; ``{}`` for other modes."""
    from nas.measure.latency_model import LatencyModel

    if runner.latency != "predict":
        return {}
    try:
        return LatencyModel.load(runner.latency_model).to_json()
    except UserError as e:
        raise SpaceError(source, "latency.model", str(e)) from None


def latency_spec(runner: Runner, base: Any, *, source: str) -> dict[str, Any]:
    """The ``TrialSpec`` fields of the runner's reference and latency model. The reference's run
    key part names only a reference the runner chose (the default, the space's base, adds none:
    the keys of earlier campaigns stand)."""
    from nas.space.candidate import Candidate

    reference = latency_reference(runner, base, source=source)
    named = runner.latency_reference
    ref_key = "off" if named == "off" else None
    if named not in (None, "off") and reference:
        ref_key = Candidate.from_dict(reference).id
    return {
        "latency_reference": reference,
        "latency_reference_key": ref_key,
        "latency_model": latency_model_data(runner, source=source),
    }


def check_latency_columns(runner: Runner, wanted: set[str] | dict, *, source: str) -> None:
    """A latency objective or constraint the runner cannot fill: one clear error."""

    def refuse(col: str, why: str, instead: str) -> None:
        raise UserError(
            f"{source}: {col} is an objective or constraint, but runner {runner.name!r} {why}; "
            f"{instead}"
        )

    for col in wanted:
        if runner.latency == "off" and col in _TIMED:
            refuse(col, "has latency: off", f"turn latency on or drop {col}")
        if runner.latency == "predict" and col in _TIMED:
            refuse(col, "predicts latency (mode predict)", "use latency_pred_ms")
        if col == "latency_pred_ms" and runner.latency != "predict":
            refuse(col, "does not predict latency", "use latency: {mode: predict, model: PATH}")
        if col == "latency_rel" and runner.latency_reference == "off":
            refuse(col, "has latency.reference: off", "name a reference or drop latency_rel")
