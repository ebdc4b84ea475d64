"""The driver's watch over a running campaign: no silent stretches, no endless wait.

* A line when a trial starts, naming its node; a status line whenever ``status_interval_s`` passed
  without another line (running trials with their epoch and node, finished, failed, pending and
  why, the best value so far). Both go to the ``nas.progress`` logger.
* A cluster that shrinks: while trials are pending and no live node can fit one (its total
  resources less what the campaign's services hold there: the latency service's reservation; the
  ledger holds none), a line every ``status_interval_s`` names the runner's request, the live nodes
  and what they have for trials, and how long it has waited. After ``wait_for_resources_s`` (None:
  forever) the experiment ends as on Ctrl+C (Tune saves its state, pending trials stay pending),
  the finished rows stay in the table, and ``fit`` raises ``CampaignPaused`` (the CLI exits 3):
  ``nas resume`` continues once a node that fits joins.

Driver side, called from ``nas.campaign.callback.TableCallback`` inside Tune's loop; pickled with
the experiment (plain values only) and re-armed by ``nas resume``.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from nas.campaign.progress import Progress, format_duration
from nas.campaign.runner import Runner
from nas.errors import CampaignPaused

__all__ = ["Watch", "fit"]

log = logging.getLogger("nas.progress")
CHECK_S = 2.0  # how often the cluster's nodes are asked while trials are pending
STARTING_S = 30.0  # a trial whose actor has not said where it runs by then: its line says '?'
_LISTED = 8  # running trials named in a status line (the rest are counted)
_QUIET_ON_STOP = ("ray.tune.tune", "ray.tune.analysis.experiment_analysis")


class Watch:
    """Status lines and the wait for resources of one campaign run (see the module docstring)."""

    def __init__(
        self, runner: Runner, progress: Progress | None, *, epochs: int, latency: str | None
    ):
        self.runner_name, self.epochs = runner.name, epochs
        self.need = {"CPU": float(runner.cpus_per_trial), "GPU": float(runner.gpus_per_trial)}
        self.interval, self.patience = runner.status_interval_s, runner.wait_for_resources_s
        self.max_concurrent = runner.max_concurrent
        self.hold: dict[str, float] = {}  # what the latency service reserves, on its node
        if latency is not None:
            place = runner.latency_placement()
            self.hold = {"CPU": place["num_cpus"], "GPU": place["num_gpus"]}
        self.latency, self.progress = latency, progress
        self.rearm(progress)

    def rearm(self, progress: Progress | None) -> None:
        """Fresh clocks (a new run, or ``nas resume`` of a pickled one)."""
        self.progress = progress
        self.last_line = self.last_check = self.last_scan = 0.0
        self.started = time.time()
        self.stuck_since: float | None = None
        self.waits_said, self.gave_up, self.stop_line = 0, False, ""
        self.service_node: str | None = None
        self._starting: dict[str, tuple] = {}  # trial id -> (its node's ObjectRef, running, since)

    def __getstate__(self) -> dict:  # pickled with the experiment: no ObjectRef in it
        return {**self.__dict__, "_starting": {}}

    # ------------------------------------------------------------------ Tune's loop
    def trial_started(self, trial, running: int) -> None:
        """A line naming the trial's node; ``running``: the trials running now, this one too.
        The node is asked without waiting (the actor may still be starting, or its node dying):
        the line is said by ``step`` once the answer is in."""
        if self.progress is None:
            return
        host = trial.temporary_state.location.hostname
        actor = trial.temporary_state.ray_actor
        if host or actor is None:
            self._say_started(trial.trial_id, host or "?", running)
        else:
            ref = actor.get_current_ip_pid.remote()
            self._starting[trial.trial_id] = (ref, running, time.time())

    def _say_started(self, trial_id: str, node: str, running: int) -> None:
        log.info("trial %s started on %s (%d running)", trial_id, node, running)
        self.last_line = time.time()

    def _starts_answered(self) -> None:
        """The trial-start lines whose node has answered (or that waited STARTING_S: '?')."""
        import ray

        refs = [ref for ref, _, _ in self._starting.values()]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        now = time.time()
        for trial_id, (ref, running, since) in list(self._starting.items()):
            if ref in ready:
                try:
                    node = ray.get(ref)[0]
                except Exception:  # noqa: BLE001 - the actor died as it started: Tune says so
                    node = "?"
            elif now - since >= STARTING_S:
                node = "?"
            else:
                continue
            del self._starting[trial_id]
            self._say_started(trial_id, node, running)

    def step(self, trials) -> None:
        """Called on every step of Tune's loop: the trials are looked at (O(trials)) at most
        every ``CHECK_S`` seconds, not on every step, so a long campaign's steps stay O(1)."""
        if self._starting:
            self._starts_answered()
        now = time.time()
        if now - self.last_scan < min(CHECK_S, self.interval):
            return
        self.last_scan = now
        pending = sum(t.status == "PENDING" for t in trials)
        if not pending or any(t.status == "RUNNING" for t in trials):  # a node fits one
            self.stuck_since, self.waits_said = None, 0
        elif now - self.last_check >= min(CHECK_S, self.interval):
            self.last_check = now
            self._check_resources(pending, now)
        if self.progress is None or self.gave_up:
            return
        if now - max(self.last_line, self.progress.last_line, self.started) >= self.interval:
            log.info(self.status(trials))
            self.last_line = now

    def status(self, trials) -> str:
        running = [t for t in trials if t.status == "RUNNING"]
        pending = sum(t.status == "PENDING" for t in trials)
        listed = ", ".join(self._describe_trial(t) for t in running[:_LISTED])
        more = f" and {len(running) - _LISTED} more" if len(running) > _LISTED else ""
        p = self.progress
        done = sum(p.counts.values()) if p else 0
        why = f" ({self._why_pending(len(running))})" if pending else ""
        return (
            f"status: {len(running)} running{f' [{listed}{more}]' if running else ''}, "
            f"{done} finished, {p.failed() if p else 0} failed, {pending} pending{why}; "
            f"{p.best_text() if p else ''}; elapsed {format_duration(time.time() - self.started)}"
        )

    def _describe_trial(self, trial) -> str:
        result = trial.last_result or {}
        node = trial.temporary_state.location.hostname or result.get("node_ip") or "?"
        return f"{trial.trial_id} epoch {int(result.get('epoch', 0) or 0)}/{self.epochs} on {node}"

    def _why_pending(self, running: int) -> str:
        if self.stuck_since is not None:
            return "no live node can fit a trial"
        if self.max_concurrent is not None and running >= self.max_concurrent:
            return f"max_concurrent {self.max_concurrent} reached"
        return "waiting for free resources or for the searcher"

    # ------------------------------------------------------------------ shrinking cluster
    def _check_resources(self, pending: int, now: float) -> None:
        nodes = self._nodes()
        if any(_fits(free, self.need) for _, _, free in nodes):
            self.stuck_since, self.waits_said = None, 0
            return
        if self.stuck_since is None:
            self.stuck_since = now
        waited = now - self.stuck_since
        request = f"{self.need['CPU']:g} CPU, {self.need['GPU']:g} GPU"
        where = "; ".join(_describe_node(*n) for n in nodes) or "none"
        if self.patience is not None and waited >= self.patience:
            self.stop_line = (
                f"runner {self.runner_name!r}: no live node could fit a trial ({request}) for "
                f"{format_duration(waited)} (wait_for_resources_s: {self.patience:g}); "
                f"{pending} trial(s) pending; live nodes: {where}"
            )
            log.warning("stopping: %s", self.stop_line)
            self._stop_tune()
        elif waited >= (self.waits_said + 1) * self.interval:
            self.waits_said += 1
            limit = format_duration(self.patience) if self.patience is not None else "forever"
            log.warning(
                "waiting for resources: %d trial(s) pending, each needs %s (runner %r), and no "
                "live node fits one; live nodes: %s; waited %s of %s",
                pending, request, self.runner_name, where, format_duration(waited), limit,
            )  # fmt: skip
            self.last_line = now

    def _nodes(self) -> list[tuple[str, dict, dict]]:
        """(address, total resources, what is left for trials) of each live node."""
        import ray

        alive = [n for n in ray.nodes() if n.get("Alive")]
        ips = {n["NodeManagerAddress"] for n in alive}
        if self.latency and self.service_node not in ips:
            self.service_node = self._find_service()
        out = []
        for n in alive:
            total, ip = n["Resources"], n["NodeManagerAddress"]
            hold = self.hold if ip == self.service_node else {}
            free = {k: total.get(k, 0) - hold.get(k, 0) for k in ("CPU", "GPU")}
            out.append((ip, total, free))
        return out

    def _find_service(self) -> str | None:
        """The latency service's node (it may have moved after its node died; None: not placed)."""
        import ray

        from nas.campaign.services import lookup

        try:
            return ray.get(lookup(self.latency).where.remote(), timeout=5)["latency_node"]
        except Exception:  # noqa: BLE001 - gone or restarting: it holds nothing anywhere now
            return None

    def _stop_tune(self) -> None:
        """End Tune's loop as its own SIGUSR1 handler does (state saved, pending trials kept)."""
        self.gave_up = True
        for name in _QUIET_ON_STOP:  # Tune's "Ctrl+C" and unfinished-trial lines: said here
            logging.getLogger(name).setLevel(logging.CRITICAL)
        handler = signal.getsignal(signal.SIGUSR1)
        if callable(handler) and getattr(handler, "__module__", "").startswith("ray.tune"):
            handler(signal.SIGUSR1, None)
        else:  # Tune runs outside the main thread: end it by an error, then say why
            raise CampaignPaused(self.stop_line)


def _fits(free: dict, need: dict) -> bool:
    return all(free.get(k, 0) >= v for k, v in need.items() if v)


def _describe_node(ip: str, total: dict[str, Any], free: dict[str, float]) -> str:
    return (
        f"{ip} {total.get('CPU', 0):g} CPU {total.get('GPU', 0):g} GPU "
        f"({free['CPU']:g} CPU {free['GPU']:g} GPU for trials)"
    )


def fit(tuner, watch: Watch | None, folder) -> None:
    """``tuner.fit()``; a failed write of the campaign table (disk full, permissions) surfaces as
    its own one-line UserError, not as Tune's wrapped traceback; a campaign that stopped waiting
    for resources raises ``CampaignPaused``."""
    from nas.campaign.callback import WRITE_ERRORS

    WRITE_ERRORS.clear()
    levels = {name: logging.getLogger(name).level for name in _QUIET_ON_STOP}
    try:
        tuner.fit()
    except Exception:
        if WRITE_ERRORS:
            raise WRITE_ERRORS[0] from None
        if watch is None or not watch.gave_up:
            raise
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    if WRITE_ERRORS:
        raise WRITE_ERRORS[0]
    if watch is not None and watch.gave_up:
        raise CampaignPaused(
            f"{watch.stop_line}. The finished trials are kept in {folder}; `nas resume {folder}` "
            "continues the campaign once a node that fits a trial joins the cluster"
        )
