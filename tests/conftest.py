"""Shared test helpers. Tests run on CPU, offline; torch uses one thread for stable speed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.ray_cluster import ray_cluster  # noqa: F401 - the 2-node loopback cluster fixture

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "spaces" / "presets"


def kill_driver(proc) -> None:
    """SIGKILL a campaign driver started with ``start_new_session=True``, then the local Ray it
    started in its session (and only that)."""
    import os
    import signal
    import time

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def nas_process(*args: str, **kw):
    """``python -m nas.cli ARGS`` as a child process (stdout and stderr together, text)."""
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "nas.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomize_for_equivalence(model: torch.nn.Module, *, seed: int = 0) -> torch.nn.Module:
    """Random BN statistics/affine, LayerScale, GRN and gate values, so that every branch that a
    re-parameterization merges contributes visibly to the output."""
    g = torch.Generator().manual_seed(seed)

    def rand(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return (torch.rand(t.shape, generator=g, dtype=torch.float64) * (hi - lo) + lo).to(t.dtype)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(rand(m.running_mean, -0.5, 0.5))
                m.running_var.copy_(rand(m.running_var, 0.5, 2.0))
                m.weight.copy_(rand(m.weight, 0.5, 1.5))
                m.bias.copy_(rand(m.bias, -0.5, 0.5))
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("gamma", "beta") or name.endswith(".gate"):
                p.copy_(rand(p, 0.2, 0.6))
    return model
