"""Campaign services: Ray actors that trials ask instead of reading the driver's files.

* ``LatencyService`` times deploy-form latency, one model at a time, on resources it owns (CPU
  cores reserved in Ray's accounting and pinned threads, or a GPU), and caches by candidate id and
  protocol. Trials ask it before they train, so every objective value exists when a trial reports
  to the searcher; each answer says where it was measured (node, device, threads).
* ``Ledger`` knows the campaign table's finished trials (trial id -> objective values, run key ->
  row): a trial restarted by ``nas resume`` is not re-run, and a search reuses identical work, on
  any node, without a shared filesystem. The driver's table callback keeps it up to date.

Both are named actors of the campaign (``names(campaign)``), looked up by name on the workers.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.campaign.runner import Runner
from nas.campaign.trial import measured_objectives
from nas.device import tune_host_allocator
from nas.errors import UserError
from nas.vocab import FINISHED_STATUSES

__all__ = ["Ledger", "LatencyService", "ServiceNames", "lookup", "start_services", "stop_services"]

NAMESPACE = "nas"
# The driver keeps a handle of every service it started: a named actor without one is collected.
_HANDLES: dict[str, Any] = {}


@dataclass(frozen=True)
class ServiceNames:
    """Actor names of one campaign run (travel to the trials in the TrialSpec)."""

    latency: str | None
    ledger: str


class LatencyService:
    """One candidate at a time: ``measure`` builds the candidate's deploy form and times it under
    the campaign's protocol with ``threads`` pinned threads, in the same rounds as the campaign's
    reference candidate when it has one (``latency_rel``)."""

    def __init__(
        self, *, device: str, settings: dict[str, Any], reference: dict[str, Any] | None = None
    ):
        self.device, self.settings = device, dict(settings)
        self.reference = dict(reference or {})  # Candidate.to_dict(); timed in the same rounds
        self.threads = int(settings.get("threads", 1))
        self.cache: dict[tuple, dict[str, Any]] = {}
        tune_host_allocator()

    def where(self) -> dict[str, Any]:
        import ray
        import torch

        name = torch.cuda.get_device_name() if self.device.startswith("cuda") else None
        return {
            "latency_node": ray.util.get_node_ip_address(),
            "latency_host": platform.node(),
            "latency_device": self.device,
            "latency_device_name": name or platform.processor() or platform.machine(),
            "latency_threads": self.threads,
        }

    def measure(self, candidate: Mapping[str, Any]) -> dict[str, Any]:
        import torch

        from nas.measure import LatencyProtocol, measure_latency
        from nas.measure.candidate import reference_model
        from nas.models.build import build_model, reparameterize
        from nas.space.candidate import Candidate

        c = Candidate.from_dict(dict(candidate))
        proto = LatencyProtocol(
            device=self.device, image_size=c.image_size, in_chans=c.in_chans, **self.settings
        )
        key = (c.id, proto)
        if key not in self.cache:
            t0 = time.perf_counter()
            ref_id, ref = None, None
            if self.reference:
                ref_id, ref = reference_model(Candidate.from_dict(self.reference), proto)
            torch.manual_seed(0)
            deploy = reparameterize(build_model(c))
            lat = measure_latency(deploy, proto, reference=ref, reference_key=ref_id)
            self.cache[key] = {
                **lat,
                "latency_ref_id": ref_id,
                **self.where(),
                "latency_source": "service",
                "latency_s": time.perf_counter() - t0,
            }
        return dict(self.cache[key])


@dataclass
class Ledger:
    """Finished work of the campaign, held by the driver's side, asked by the workers."""

    objectives: dict[str, str]
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # trial id -> status, values
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # run key -> finished row

    def add(self, row: Mapping[str, Any], finished: bool) -> None:
        """A row the driver wrote; ``finished``: its work is final (reusable by run key)."""
        values = measured_objectives(row, self.objectives)
        self.values[row["trial_id"]] = {**values, "status": row.get("status")}
        if finished and row.get("run_key"):  # the first finished row of that work stands for it
            self.rows.setdefault(row["run_key"], dict(row))

    def add_many(self, rows: list[dict[str, Any]], finished: list[bool]) -> None:
        for row, done in zip(rows, finished):
            self.add(row, done)

    def existing(self, trial_id: str) -> dict[str, Any] | None:
        """Status and measured objective values of a trial already in the table (None: not
        there)."""
        return self.values.get(trial_id)

    def reusable(self, run_key: str) -> dict[str, Any] | None:
        return self.rows.get(run_key)


def start_services(
    runner: Runner,
    *,
    campaign: str,
    run: str,
    objectives: dict,
    table_rows,
    reuse: bool = True,
    reference: dict[str, Any] | None = None,
) -> ServiceNames:
    """Start the campaign's ledger (on the driver's node, no resources) and, unless latency is
    off or measured inside the trials, its latency service where the runner places it."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    names = ServiceNames(
        latency=f"nas-latency-{campaign}-{run}" if runner.latency_service() else None,
        ledger=f"nas-ledger-{campaign}-{run}",
    )
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    ledger = (
        ray.remote(Ledger)
        .options(name=names.ledger, namespace=NAMESPACE, num_cpus=0, scheduling_strategy=here)
        .remote(objectives)
    )
    _HANDLES[names.ledger] = ledger
    rows = list(table_rows)
    finished = [reuse and row.get("status") in FINISHED_STATUSES for row in rows]
    ray.get(ledger.add_many.remote(rows, finished))
    if names.latency:
        place = runner.latency_placement()
        options = dict(name=names.latency, namespace=NAMESPACE, max_restarts=-1, **place)
        if _driver_node_fits(place):
            options["scheduling_strategy"] = here
        service = ray.remote(LatencyService).options(**options)
        actor = _HANDLES[names.latency] = service.remote(
            device=runner.device, settings=runner.latency_settings(), reference=reference
        )
        try:
            ray.get(actor.where.remote(), timeout=runner.connect_timeout_s * 4)
        except ray.exceptions.GetTimeoutError:
            stop_services(names)
            raise UserError(
                f"runner {runner.name!r}: latency: the latency service needs {place} and no node "
                f"of the cluster could take it within {runner.connect_timeout_s * 4:g} s"
            ) from None
        except ray.exceptions.RayError as e:
            stop_services(names)
            first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise UserError(
                f"runner {runner.name!r}: latency: the service failed: {first}"
            ) from None
    return names


def stop_services(names: ServiceNames) -> None:
    """End the campaign's actors (their resources go back to the trials of the next run)."""
    import ray

    for name in (names.latency, names.ledger):
        handle = _HANDLES.pop(name, None) if name else None
        if handle is not None:
            ray.kill(handle)


def _driver_node_fits(place: Mapping[str, Any]) -> bool:
    """Whether the driver's node has what the latency service needs (the default home)."""
    import ray

    me = ray.get_runtime_context().get_node_id()
    node = next((n for n in ray.nodes() if n["NodeID"] == me and n["Alive"]), None)
    if node is None:
        return False
    have = node["Resources"]
    need = {"CPU": place.get("num_cpus", 0), "GPU": place.get("num_gpus", 0)}
    need |= dict(place.get("resources", {}))
    return all(have.get(k, 0) >= v for k, v in need.items() if v)


def lookup(name: str):
    """A campaign actor by name (from a trial, on any node)."""
    import ray

    return ray.get_actor(name, namespace=NAMESPACE)
