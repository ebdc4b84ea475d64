"""Shared test helpers. Tests run on CPU, offline; torch uses one thread for stable speed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.ray_cluster import ray_cluster  # noqa: F401 - the 2-node loopback cluster fixture

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "spaces" / "presets"
# The latency timing of test campaigns (a runner's ``latency:`` keys): three short rounds after
# 0.1 s of warm-up instead of the protocol's 5-15 rounds after 1 s. The campaigns' tests check the
# pipeline, not the figures' precision (tests/test_measure.py checks the protocol); the default
# cost ~6 s of busy timing per trial, about a third of the suite's CPU time.
QUICK_LATENCY = "warmup_s: 0.1, rounds: 3, max_rounds: 3"


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


PROBE = (
    "import ray; ray.init(address={address!r}, logging_level='ERROR', log_to_driver=False);"
    "print('CONNECTED', flush=True)"
)


def assert_refused_without_token(driver_pid: int, home: Path) -> None:
    """The local Ray of the campaign driver ``driver_pid`` refuses a second process that has no
    token or a wrong one (as CVE-2023-48022's attacker), and admits one holding the
    driver's token (read from its raylet's environment: so the refusals are the token's doing)."""
    import os
    import subprocess
    import sys

    from nas.campaign.loopback import _descendants

    address = token = None
    for pid in _descendants(driver_pid):  # its raylet: started with the address and the token
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if not args[0].endswith(b"raylet"):
            continue
        address = next(a for a in args if a.startswith(b"--gcs-address=")).decode()[14:]
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            token = item.decode()[15:] if item.startswith(b"RAY_AUTH_TOKEN=") else token
    assert address and token, (address, token)
    # HOME without ~/.ray/auth_token; 3 connection tries (Ray's default of 20 takes ~21 s)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    clean.update(HOME=str(home), RAY_NUM_REDIS_GET_RETRIES="3")
    clients = {
        "none": clean,
        "wrong": {**clean, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64},
        "driver's": {**clean, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
    }
    code = PROBE.format(address=address)
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for name, env in clients.items()
    }
    out = {name: p.communicate(timeout=120)[0] for name, p in procs.items()}
    for name in ("none", "wrong"):
        assert procs[name].returncode != 0 and "CONNECTED" not in out[name], out[name][-2000:]
        assert f"Failed to connect to Ray cluster at {address}" in out[name], out[name][-2000:]
    assert "CONNECTED" in out["driver's"], out["driver's"][-2000:]


# The slowest modules, slowest first (measured, `make test` on the 2-core machine): run first, so
# that the parallel workers (pytest-xdist, one module per worker at a time) end together instead
# of one of them running a long module alone at the end (`--dist loadfile`). Only the order.
SLOW_FIRST = (  # the two loopback-cluster modules apart: they are then seldom run at once
    "test_cluster_isolated",
    "test_campaign",
    "test_replay",
    "test_cluster",
    "test_cli",
    "test_pretrain",
    "test_measure",
    "test_funnel",
    "test_report_cli",
    "test_cli_train",
)


def pytest_collection_modifyitems(config, items):
    """The slowest modules first (the order in which xdist hands out the modules)."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable within a module


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
