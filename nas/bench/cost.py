"""``nas bench cost``: the analytic fast cost path against fvcore (agreement and speed-up)."""

from __future__ import annotations

import statistics
import time

import torch

from nas.bench.common import seed_candidates, target, threads


def bench_cost(*, n_fast: int = 200, n_full: int = 10, seed: int = 0, rounds: int = 3) -> dict:
    """fast_cost on ``n_fast`` seed candidates against build + fvcore (both forms) on ``n_full``
    of them, interleaved: every round one fast pass over all, then a share of the full ones."""
    from nas.measure import count_macs, count_params, fast_cost
    from nas.models.build import build_model, reparameterize

    cands = seed_candidates(n_fast, seed)

    def full(c) -> dict:
        torch.manual_seed(0)
        model = build_model(c)
        deploy = reparameterize(model)
        x = torch.randn(1, c.in_chans, c.image_size, c.image_size)
        out = {"params": count_params(model), "params_deploy": count_params(deploy)}
        return out | {"macs": count_macs(model, x)[0], "macs_deploy": count_macs(deploy, x)[0]}

    fast_rates, full_s, fast, measured = [], 0.0, {}, {}
    with threads("cpu"):
        full(cands[0])  # warm-up: imports and the first trace
        for r in range(rounds):
            t0 = time.perf_counter()
            for c in cands:
                fast[c.id] = fast_cost(c)
            fast_rates.append(len(cands) / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for c in cands[:n_full][r::rounds]:
                measured[c.id] = full(c)
            full_s += time.perf_counter() - t0
    mismatches, worst = [], 0.0
    for cid, m in measured.items():
        f = fast[cid]
        rel = max(abs(f[k] - m[k]) / max(m[k], 1) for k in ("macs", "macs_deploy"))
        worst = max(worst, rel)
        if f["params"] != m["params"] or f["params_deploy"] != m["params_deploy"] or rel > 0.01:
            mismatches.append({"candidate_id": cid, "fast": f, "full": m})
    fast_per_s, full_per_s = statistics.median(fast_rates), len(measured) / full_s
    figures = dict(n_fast=len(cands), n_full=len(measured), fast_per_s=fast_per_s)
    figures |= dict(full_per_s=full_per_s, speedup=fast_per_s / full_per_s)
    figures |= dict(agreement=not mismatches, max_macs_rel_err=worst, mismatches=mismatches)
    targets = [
        target("speedup", figures["speedup"], "fast/full, informative", None),
        target("agreement", not mismatches, "params exact, MACs within 1%", not mismatches),
        target("fast_per_s", fast_per_s, ">= 50 candidates/s on one core", fast_per_s >= 50),
    ]
    return {"figures": figures, "targets": targets, "notes": []}
