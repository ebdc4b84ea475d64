"""``nas bench latency``: latency repeatability across processes (CV of medians, Kendall tau), of
the raw figure and of ``latency_rel`` (each candidate over the space's base candidate, timed in
the same rounds)."""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys

import torch
from torch import nn

from nas.bench.common import ROOT, kendall_tau, seed_candidates, target

log = logging.getLogger(__name__)
_YARDSTICK = "yardstick"
_REFERENCE = "reference"


def _cv(values) -> float:
    values = list(values)
    return statistics.pstdev(values) / statistics.fmean(values)


def latency_worker(args: dict) -> dict:
    """In a fresh process: deploy-form latency (LatencyProtocol defaults) of seed candidates,
    timed side by side in rounds (``measure_latencies``) with the space's base candidate as the
    reference of ``latency_rel``."""
    from nas.bench.common import SEEDS
    from nas.measure import LatencyProtocol, measure_latencies
    from nas.measure.candidate import reference_model
    from nas.models.build import build_model, reparameterize
    from nas.space import load_space

    proto = LatencyProtocol(device=args.get("device", "cpu"), image_size=args["image_size"])
    models = {}
    for c in seed_candidates(args["n"], args.get("seed", 0)):
        torch.manual_seed(0)
        models[c.id] = reparameterize(build_model(c))
    # a fixed workload timed in the same rounds: how fast the machine itself was in this process
    models[_YARDSTICK] = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3))
    ref_id, models[_REFERENCE] = reference_model(load_space(SEEDS).base, proto)
    result = measure_latencies(models, proto, reference=_REFERENCE)
    ids = [k for k in models if k not in (_YARDSTICK, _REFERENCE)]
    return {
        "ids": ids,
        "p50_ms": [result[k]["latency_ms_p50"] for k in ids],
        "rel": [result[k]["latency_rel"] for k in ids],
        "yardstick_ms": result[_YARDSTICK]["latency_ms_p50"],
        "reference": ref_id,
        "reference_ms": result[_REFERENCE]["latency_ms_p50"],
    }


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
    cvs = [_cv(v) for v in zip(*(r["p50_ms"] for r in runs))]
    rel_cvs = [_cv(v) for v in zip(*(r["rel"] for r in runs))]
    # the same figures relative to the yardstick: what remains when the machine's own speed
    # change between processes is divided out
    relative = [[t / r["yardstick_ms"] for t in r["p50_ms"]] for r in runs]
    pairs = [(i, j) for i in range(processes) for j in range(i + 1, processes)]
    taus = [kendall_tau(runs[i]["p50_ms"], runs[j]["p50_ms"]) for i, j in pairs]
    rel_taus = [kendall_tau(runs[i]["rel"], runs[j]["rel"]) for i, j in pairs]
    figures = dict(candidates=runs[0]["ids"], p50_ms_per_process=[r["p50_ms"] for r in runs])
    figures |= dict(cv_per_candidate=cvs, cv_median=statistics.median(cvs), tau_pairs=taus)
    figures |= dict(
        yardstick_ms_per_process=[r["yardstick_ms"] for r in runs],
        machine_cv=_cv([r["yardstick_ms"] for r in runs]),
        cv_relative_max=max(_cv(v) for v in zip(*relative)),
    )
    figures |= dict(
        reference=runs[0]["reference"],
        reference_ms_per_process=[r["reference_ms"] for r in runs],
        rel_per_process=[r["rel"] for r in runs],
        rel_cv_per_candidate=rel_cvs,
        rel_cv_median=statistics.median(rel_cvs),
        rel_tau_pairs=rel_taus,
    )
    targets = [
        target("cv_max", max(cvs), "<= 0.05 (CV of medians across processes)", max(cvs) <= 0.05),
        target("tau_min", min(taus), ">= 0.9 (Kendall tau, every pair)", min(taus) >= 0.9),
        target(
            "rel_cv_max",
            max(rel_cvs),
            "<= 0.05 (latency_rel: CV across processes)",
            max(rel_cvs) <= 0.05,
        ),
        target(
            "rel_tau_min",
            min(rel_taus),
            ">= 0.9 (latency_rel: Kendall tau, every pair)",
            min(rel_taus) >= 0.9,
        ),
    ]
    return {"figures": figures, "targets": targets, "notes": []}
