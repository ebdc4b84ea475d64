"""A real multi-node Ray cluster on one machine, on loopback: ``ray start --head`` on 127.0.0.2
and ``ray start --address=...`` on 127.0.0.3, each a separate ``ray start --block`` process in its
own session (process group), so that a node can be killed alone and ``shutdown`` stops exactly
what this object started (never a machine-wide ``ray stop``). Used by the tests, by ``nas bench
campaign`` (the 2-node case) and to try a cluster without one (docs/clusters.md).

Settings from ../shared/stack.md: Ray token authentication on every command (T2; a random token
in a 0600 file of the private temp dir, named by ``RAY_AUTH_TOKEN_PATH``, the way Ray documents
for nodes and drivers; ``auth=False`` starts an unauthenticated cluster), loopback node
addresses other than 127.0.0.1 (T3), usage stats off and small object stores (T4), a private
``--temp-dir`` and OS-assigned ports so that other Ray instances on the machine are not disturbed;
a worker node that cannot see some folders runs in its own mount namespace (T16, root only).
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["HEAD_IP", "WORKER_IP", "RayCluster", "free_port"]

RAY = str(Path(sys.executable).with_name("ray"))
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc: children of children, ...)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, pp in parent.items() if pp in frontier]
        found += children
        frontier = children
    return found


class RayCluster:
    """Head + one worker node, one CPU each (one trial at a time per node).

    ``hide``: folders the worker node cannot see, as on another machine: it runs in its own mount
    namespace with an empty tmpfs over each (stack.md T16); everything else (Ray's temp dir, a
    shared storage folder) stays visible, like an NFS mount."""

    def __init__(
        self,
        *,
        cpus: int = 1,
        object_store_mb: int = 100,
        env: dict | None = None,
        hide: tuple[Path, ...] = (),
        auth: bool = True,
    ):
        self.cpus, self.object_store_mb, self.hide = cpus, object_store_mb, tuple(hide)
        # short: Ray's unix socket paths live under the temp dir (107-byte limit)
        self.temp_dir = Path(tempfile.mkdtemp(prefix="nasray", dir="/tmp"))
        self.port = free_port(HEAD_IP)
        self.address = f"{HEAD_IP}:{self.port}"
        self.auth, self.token_path = auth, self.temp_dir / "auth_token"
        if auth:
            fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        self.env = {
            **os.environ,
            **self.auth_env(),
            "RAY_USAGE_STATS_ENABLED": "0",
            # a dead node is noticed in ~20 s (default ~30 s): its trials are retried sooner
            "RAY_health_check_initial_delay_ms": "1000",
            "RAY_health_check_period_ms": "1000",
            "RAY_health_check_timeout_ms": "1000",
            # a node starved of CPU for a while is not dead: with the test suite on two workers
            # the 2-core machine runs fully loaded, and in one CI run a cluster test's trials ran
            # on the head alone (its worker node most likely declared dead after 8 missed
            # checks); 20 s is still below Ray's default ~30 s
            "RAY_health_check_failure_threshold": "20",
            **(env or {}),
        }
        self.env.pop("RAY_ADDRESS", None)
        self.procs: dict[str, subprocess.Popen] = {}
        atexit.register(self.shutdown)  # a crashed test session leaves no nodes behind

    # ------------------------------------------------------------------ nodes
    def _common(self, ip: str) -> list[str]:
        return [
            f"--node-ip-address={ip}",
            f"--num-cpus={self.cpus}",
            "--num-gpus=0",
            f"--object-store-memory={self.object_store_mb * 2**20}",
            "--disable-usage-stats",
            "--min-worker-port=0",
            "--max-worker-port=0",
            f"--dashboard-agent-listen-port={free_port(ip)}",
            f"--metrics-export-port={free_port(ip)}",
            "--block",
        ]

    def _start(self, name: str, args: list[str], timeout: float = 60, hide=()) -> None:
        log = open(self.temp_dir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        cmd = [RAY, "start", *args]
        if hide:  # its own mount namespace: an empty tmpfs over each hidden folder
            mounts = " && ".join(f"mount -t tmpfs none {shlex.quote(str(h))}" for h in hide)
            shell = f"{mounts} && exec {' '.join(shlex.quote(c) for c in cmd)}"
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell]
        proc = subprocess.Popen(
            cmd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill the node alone
        )
        self.procs[name] = proc
        deadline = time.time() + timeout
        text = ""
        while time.time() < deadline:
            text = (self.temp_dir / f"{name}.log").read_text()
            if "will now block forever" in text:
                return
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        self.shutdown()
        raise RuntimeError(f"ray node {name} did not start:\n{text[-3000:]}")

    def start(self, *, worker: bool = True) -> RayCluster:
        self._start(
            "head",
            [
                "--head",
                f"--port={self.port}",
                f"--temp-dir={self.temp_dir}",
                "--include-dashboard=false",
                *self._common(HEAD_IP),
            ],
        )
        if worker:
            self.start_worker()
        return self

    def start_worker(self) -> None:
        args = [f"--address={self.address}", *self._common(WORKER_IP)]
        self._start("worker", args, hide=self.hide)
        self.wait_nodes(2)

    def alive_nodes(self) -> list[str]:
        """IP addresses of the alive nodes, asked in a fresh process (the caller may hold its own
        Ray connection)."""
        code = (
            "import ray, json;"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False);"
            "print('NODES=' + json.dumps([n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=60
        )
        for line in out.stdout.splitlines():
            if line.startswith("NODES="):
                return json.loads(line[len("NODES=") :])
        return []

    def wait_nodes(self, n: int, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.alive_nodes()) == n:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the cluster did not reach {n} alive nodes in {timeout} s")

    def kill_worker(self) -> None:
        """SIGKILL the worker node's whole process group (raylet, agents, trial workers): as when
        a machine dies; returns once the head has noticed."""
        self._kill("worker", signal.SIGKILL)
        self.wait_nodes(1)

    def _kill(self, name: str, sig: int) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        tree = _descendants(proc.pid)  # trial workers may leave the group and outlive the raylet
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        for pid in tree:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def auth_env(self) -> dict[str, str]:
        """What a process needs to join this cluster: token mode and the token file
        (``RAY_AUTH_TOKEN`` empty: Ray would prefer a token there to the file)."""
        if not self.auth:
            return {"RAY_AUTH_MODE": "disabled"}
        path = str(self.token_path)
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "", "RAY_AUTH_TOKEN_PATH": path}

    def driver_env(self, **extra: str) -> dict:
        """Environment for a ``nas`` driver process that joins this cluster."""
        return {**self.env, "RAY_ADDRESS": self.address, **extra}

    def shutdown(self) -> None:
        """Stop only what this object started: each node's process group (SIGTERM, then
        SIGKILL), then any leftover process of this cluster's private temp dir."""
        for name in ("worker", "head"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 3
        for name in list(self.procs):
            proc = self.procs[name]
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group may outlive its leader
            except ProcessLookupError:
                pass
            proc.wait()
        self.procs.clear()
        if not self.temp_dir.exists():
            return
        for pid in self.leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def leftover_pids(self) -> list[int]:
        """Processes whose command line names this cluster's temp dir or head address."""
        marks = (str(self.temp_dir), self.address)
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == os.getpid():
                continue
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(m in cmd for m in marks):
                pids.append(int(d.name))
        return pids
