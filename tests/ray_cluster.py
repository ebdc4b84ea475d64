"""The ``ray_cluster`` fixture: a two-node loopback Ray cluster (``nas.campaign.loopback``) whose
workers can import ``tests.fault_hook``. Registered for every test by ``tests/conftest.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nas.campaign.loopback import HEAD_IP, WORKER_IP, RayCluster, free_port

__all__ = ["HEAD_IP", "WORKER_IP", "RayCluster", "free_port", "ray_cluster", "node_env"]

ROOT = Path(__file__).resolve().parents[1]


def node_env(**extra: str) -> dict[str, str]:
    """Node environment: the repository on PYTHONPATH (workers import tests.fault_hook)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, **extra}


@pytest.fixture(scope="module")
def ray_cluster():
    """A two-node loopback Ray cluster for the module; torn down (only its own processes) after."""
    cluster = RayCluster(env=node_env()).start()
    try:
        yield cluster
    finally:
        cluster.shutdown()
