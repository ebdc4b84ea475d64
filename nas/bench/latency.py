"""``nas bench latency``: latency repeatability across processes (CV of medians, Kendall tau)."""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys

import torch

from nas.bench.common import ROOT, kendall_tau, seed_candidates, target

log = logging.getLogger(__name__)


def latency_worker(args: dict) -> dict:
    """In a fresh process: deploy-form latency (LatencyProtocol defaults) of seed candidates."""
    from nas.measure import LatencyProtocol, measure_latency
    from nas.models.build import build_model, reparameterize

    proto = LatencyProtocol(device=args.get("device", "cpu"), image_size=args["image_size"])
    ids, p50 = [], []
    for c in seed_candidates(args["n"], args.get("seed", 0)):
        torch.manual_seed(0)
        ids.append(c.id)
        p50.append(measure_latency(reparameterize(build_model(c)), proto)["latency_ms_p50"])
    return {"ids": ids, "p50_ms": p50}


def bench_latency(*, n: int, device: str = "cpu", processes: int = 3, size: int = 32) -> dict:
    """``processes`` fresh processes, one after the other, each timing the same candidates."""
    runs = []
    args = json.dumps({"n": n, "image_size": size, "device": device})
    for i in range(processes):
        cmd = [sys.executable, "-m", "nas.bench", "_latency_worker", args]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        if proc.returncode:
            raise RuntimeError(f"latency worker {i} failed:\n{proc.stderr[-2000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        log.info("latency process %d: %s", i, [round(t, 3) for t in runs[-1]["p50_ms"]])
    cvs = [statistics.pstdev(v) / statistics.fmean(v) for v in zip(*(r["p50_ms"] for r in runs))]
    pairs = [(i, j) for i in range(processes) for j in range(i + 1, processes)]
    taus = [kendall_tau(runs[i]["p50_ms"], runs[j]["p50_ms"]) for i, j in pairs]
    figures = dict(candidates=runs[0]["ids"], p50_ms_per_process=[r["p50_ms"] for r in runs])
    figures |= dict(cv_per_candidate=cvs, cv_median=statistics.median(cvs), tau_pairs=taus)
    targets = [
        target("cv_max", max(cvs), "<= 0.05 (CV of medians across processes)", max(cvs) <= 0.05),
        target("tau_min", min(taus), ">= 0.9 (Kendall tau, every pair)", min(taus) >= 0.9),
    ]
    return {"figures": figures, "targets": targets, "notes": []}
