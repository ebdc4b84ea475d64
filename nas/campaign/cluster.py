"""Ray start-up: a private local Ray, or a connection to the runner's cluster that fails fast
and clearly when the cluster cannot be reached."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from nas.campaign.auth import RISK, cluster_authenticated, prepare_auth
from nas.campaign.runner import Runner
from nas.errors import UserError

__all__ = ["check_fits", "check_local", "init_ray"]

log = logging.getLogger(__name__)


def init_ray(runner: Runner) -> None:
    """Start a local Ray or connect to the runner's cluster, with Ray's token authentication
    unless the runner says ``auth: disabled`` (``nas.campaign.auth``); a clear error if that
    fails."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault(
        "TUNE_GLOBAL_CHECKPOINT_S", "2"
    )  # small: a killed driver resumes in-flight trials
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # a trial that was not trained reports no accuracy: never a stand-in value (TruthfulOptunaSearch)
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    import ray

    address = runner.effective_address
    kwargs: dict[str, Any] = dict(
        include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        return
    if address is None:
        check_local(runner)  # a local Ray is started for this runner: within the machine
        kwargs.update(
            num_cpus=runner.num_cpus or _local_cpus(runner, say=True),
            object_store_memory=runner.object_store_mb * 2**20,
        )
    _check_reachable(address, runner)
    prepare_auth(runner.name, runner.auth, address)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, TimeoutError, ray.exceptions.AuthenticationError) as e:
        hint = (
            "" if address is None or runner.auth == "disabled" else "; is the token the cluster's?"
        )
        raise UserError(
            f"runner {runner.name!r}: cannot reach Ray at {address!r}: "
            f"{str(e).splitlines()[0]}{hint}"
        ) from None
    if address is not None and runner.auth == "token" and not cluster_authenticated():
        log.warning(
            "runner %r: the Ray cluster at %s runs without authentication (RAY_AUTH_MODE=disabled "
            "on its nodes): %s; start its nodes with RAY_AUTH_MODE=token",
            runner.name,
            address,
            RISK,
        )


def _check_reachable(address: str | None, runner: Runner) -> None:
    """Fail within ``connect_timeout_s`` (not Ray's long retry loop) when a host:port is unreachable."""
    import socket

    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"runner {runner.name!r}: address: expected 'auto', 'HOST:PORT' or 'ray://HOST:PORT', got {address!r}"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=runner.connect_timeout_s):
            pass
    except OSError as e:
        raise UserError(
            f"runner {runner.name!r}: cannot reach the Ray cluster at {address} within {runner.connect_timeout_s:g} s "
            f"({e.strerror or e})"
        ) from None


def check_fits(runner: Runner) -> None:
    """Fail now, with one line, when no node of the cluster can ever run one trial (Ray would
    wait for such a node forever): names the runner key and the largest node's resources. The
    latency service's reservation counts: it must leave room for a trial on some node."""
    import ray

    need = {"CPU": runner.cpus_per_trial, "GPU": runner.gpus_per_trial}
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    fits = [i for i, node in enumerate(nodes) if _fits(node, need)]
    if not fits:
        largest = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
        key = (
            "gpus_per_trial" if runner.gpus_per_trial > largest.get("GPU", 0) else "cpus_per_trial"
        )
        raise UserError(
            f"runner {runner.name!r}: {key}: a trial needs {runner.cpus_per_trial:g} CPU and "
            f"{runner.gpus_per_trial:g} GPU, but the largest of the cluster's {len(nodes)} "
            f"node(s) has {_describe(largest)}; no trial could ever start"
        )
    if not runner.latency_service():
        return
    place = runner.latency_placement()
    service = {"CPU": place["num_cpus"], "GPU": place["num_gpus"], **place["resources"]}
    for i, node in enumerate(nodes):
        if not _fits(node, service):
            continue
        left = {k: node.get(k, 0) - service.get(k, 0) for k in node}
        if _fits(left, need) or any(j != i for j in fits):
            return
    raise UserError(
        f"runner {runner.name!r}: latency: the latency service reserves {_describe(service)}, "
        f"after which no node can run a trial ({runner.cpus_per_trial:g} CPU, "
        f"{runner.gpus_per_trial:g} GPU); give the service less (e.g. latency: {{gpus: 0.25}}), "
        "use latency: inline, or add a node"
    )


def _fits(node: dict, need: dict) -> bool:
    return all(node.get(k, 0) >= v for k, v in need.items() if v)


def _describe(resources: dict) -> str:
    return f"{resources.get('CPU', 0):g} CPU, {resources.get('GPU', 0):g} GPU"


def check_local(runner: Runner) -> None:
    """A local runner never asks for more CPUs or GPUs per trial than the machine has (a local
    Ray would otherwise pretend to have them, and one trial would run e.g. 64 threads on 2
    cores): one line naming the runner key."""
    cores = os.cpu_count() or 1
    if runner.cpus_per_trial > cores:
        raise UserError(
            f"runner {runner.name!r}: cpus_per_trial: a trial asks for {runner.cpus_per_trial:g} "
            f"CPUs, but this machine has {cores} cores; a local runner does not oversubscribe "
            f"them (allowed: 0 < cpus_per_trial <= {cores}; set address: for a cluster)"
        )
    if runner.gpus_per_trial:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if runner.gpus_per_trial > gpus:
            raise UserError(
                f"runner {runner.name!r}: gpus_per_trial: a trial asks for "
                f"{runner.gpus_per_trial:g} GPUs, but this machine has {gpus}; a local runner "
                f"does not oversubscribe them (allowed: 0 <= gpus_per_trial <= {gpus})"
            )


def _local_cpus(runner: Runner, *, say: bool = False) -> int:
    """A local Ray's CPUs: every core, and at least one trial plus the latency service (which
    times one model at a time; the small oversubscription is said once, with ``say``)."""
    service = runner.latency_placement()["num_cpus"] if runner.latency_service() else 0
    cores = os.cpu_count() or 1
    cpus = max(cores, math.ceil(runner.cpus_per_trial + service))
    if say and cpus > cores:
        logging.getLogger("nas.progress").info(
            "local Ray: %d logical CPUs on %d cores: a trial's %g and the latency service's %g "
            "(it times one model at a time), %d more than the machine has",
            cpus, cores, runner.cpus_per_trial, service, cpus - cores,
        )  # fmt: skip
    return cpus
