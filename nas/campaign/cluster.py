"""Ray start-up: a private local Ray, or a connection to the runner's cluster that fails fast
and clearly when the cluster cannot be reached."""

from __future__ import annotations

import logging
import os
from typing import Any

from nas.campaign.runner import Runner
from nas.errors import UserError

__all__ = ["init_ray"]


def init_ray(runner: Runner) -> None:
    """Start a local Ray or connect to the runner's cluster; a clear error if that fails."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault(
        "TUNE_GLOBAL_CHECKPOINT_S", "2"
    )  # small: a killed driver resumes in-flight trials
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    if ray.is_initialized():
        return
    address = runner.effective_address
    kwargs: dict[str, Any] = dict(
        include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local Ray (stack.md T2)
        kwargs.update(
            num_cpus=runner.num_cpus or os.cpu_count(),
            object_store_memory=runner.object_store_mb * 2**20,
        )
    _check_reachable(address, runner)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, TimeoutError) as e:
        raise UserError(
            f"runner {runner.name!r}: cannot reach Ray at {address!r}: {str(e).splitlines()[0]}"
        ) from None


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
