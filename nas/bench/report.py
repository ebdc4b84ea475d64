"""``nas bench report``: ``nas report`` on a large synthetic survey, and exact hypervolume by
``moocore`` against the reference HSO.

The campaign: ``n`` trials (10,000; ``--quick``: 1,000) sampled from ``spaces/seeds.yaml`` with
the columns a real survey writes (``arch.*``, ``param.*``, exact analytic ``params_m`` and
``macs_m``, ``history``, a few failed and infeasible rows) and four objectives (``val_acc`` max,
``params_m``, ``macs_m``, ``latency_ms_p50`` min). Accuracy and latency are synthetic: accuracy
grows with log parameters and log layers, latency with layers (and a little with MACs), each with
noise, so that several hundred of the 10,000 trials are non-dominated.

Targets: ``write_report`` (what ``nas report`` runs) of the 10,000-trial campaign in <= 30 s;
``hypervolume_over_trials`` of its first 2,000 trials in <= 2 s; moocore's hypervolume of 1,000
non-dominated points in 4-D equal to the HSO's to 1e-12 (and how many times faster).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from nas.bench.common import ROOT, target

__all__ = ["OBJECTIVES", "bench_report", "synthetic_survey", "write_campaign"]

OBJECTIVES = {"val_acc": "max", "params_m": "min", "macs_m": "min", "latency_ms_p50": "min"}
EPOCHS = 6
REPORT_TARGET_S = 30.0
CURVE_TRIALS, CURVE_TARGET_S = 2_000, 2.0  # hypervolume over the first 2,000 trials in <= 2 s


def synthetic_survey(n: int, *, seed: int = 0):
    """A survey table of ``n`` trials (a DataFrame, cells as the campaign table stores them)."""
    import pandas as pd

    from nas.measure.cost import analytic_cost
    from nas.space import load_space

    rng = np.random.default_rng(seed)
    space = load_space(ROOT / "spaces" / "seeds.yaml")
    samples = [space.sample(rng) for _ in range(n)]
    costs = [analytic_cost(s.candidate) for s in samples]
    params_m = np.array([c["params"] for c in costs]) / 1e6
    macs_m = np.array([c["macs"] for c in costs]) / 1e6
    layers = np.array([sum(s.candidate.depths) * s.candidate.columns for s in samples])
    skill = 0.5 * np.log10(params_m) + 0.3 * np.log2(layers) + rng.normal(0, 0.12, n)
    val_acc = np.clip(0.7 + 0.06 * skill, 0.05, 0.999).round(4)
    latency = 0.08 * layers * rng.lognormal(0.0, 0.3, n) + 0.002 * macs_m
    status = rng.choice(["ok", "error", "infeasible"], size=n, p=[0.95, 0.03, 0.02])
    finished = 1.7e9 + np.cumsum(rng.exponential(30.0, n))
    rows = []
    for i, (s, st) in enumerate(zip(samples, status)):
        ok = st == "ok"
        acc = float(val_acc[i]) if ok else None
        rows.append(
            {
                "campaign": "synthetic",
                "mode": "survey",
                "trial_id": f"t{i:05d}",
                "candidate_id": s.candidate.id,
                "seed": 0,
                "status": str(st),
                "reason": None if ok else f"synthetic {st}",
                "val_acc": acc,
                "val_acc_best": acc,
                "epochs": EPOCHS if ok else 0,
                "params_m": float(params_m[i]),
                "macs_m": float(macs_m[i]),
                "latency_ms_p50": round(float(latency[i]), 4) if st != "infeasible" else None,
                "train_saved_mb": round(float(macs_m[i] * 0.8), 3),
                "started_at": float(finished[i]) - 25.0,
                "finished_at": float(finished[i]),
                "wall_s": 25.0,
                "history": _history(acc, rng) if ok else None,
                **{f"arch.{k}": _cell(v) for k, v in s.candidate.to_params().items()},
                **{f"param.{k}": _cell(v) for k, v in s.params.items()},
            }
        )
    return pd.DataFrame(rows)


def _cell(value):
    """Lists as JSON strings, as the campaign table stores them."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, tuple, dict)) else value


def _history(final: float, rng: np.random.Generator) -> str:
    """Per-epoch records ending at ``final`` accuracy (a JSON string, as stored)."""
    acc = final * (1 - np.exp(-np.arange(1, EPOCHS + 1))) / (1 - np.exp(-EPOCHS))
    loss = 2.3 * np.exp(-np.arange(1, EPOCHS + 1) / 2) + rng.uniform(0, 0.05, EPOCHS)
    return json.dumps(
        [
            {"epoch": float(e + 1), "val_acc": round(float(a), 6), "train_loss": round(float(x), 6)}
            for e, (a, x) in enumerate(zip(acc, loss))
        ]
    )


def write_campaign(folder: Path, df) -> Path:
    """A campaign folder ``nas report`` reads: ``trials.parquet`` and ``campaign.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    df.to_parquet(folder / "trials.parquet", index=False)
    spec = {"campaign": "synthetic", "mode": "survey", "spec": {"objectives": OBJECTIVES}}
    (folder / "campaign.json").write_text(json.dumps(spec, indent=1) + "\n")
    return folder


def bench_report(*, quick: bool, device: str = "cpu") -> dict:
    """``write_report`` of the synthetic survey (10,000 trials; ``quick``: 1,000), the anytime
    hypervolume curve of its table, and moocore against the reference HSO on one front."""
    from nas.campaign.table import read_table
    from nas.report import hypervolume_over_trials
    from nas.report.render import write_report

    n = 1_000 if quick else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        folder = write_campaign(Path(tmp) / "synthetic", synthetic_survey(n))
        generate_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = write_report(folder)
        report_s = time.perf_counter() - t0
        table = read_table(folder)
    curve_s = {}
    for m in sorted({min(n, CURVE_TRIALS), n}):  # the anytime curve of the first m trials
        t0 = time.perf_counter()
        hypervolume_over_trials(table.iloc[:m], OBJECTIVES)
        curve_s[m] = time.perf_counter() - t0
    m = min(n, CURVE_TRIALS)
    figures = {
        "trials": n,
        "front": len(report.pareto),
        "generate_s": generate_s,
        "report_s": report_s,
        "hypervolume_over_trials_s": {f"{k} trials": v for k, v in curve_s.items()},
        "sections": {s.title: s.unavailable or "ok" for s in report.sections},
        "hypervolume": _moocore_vs_hso(200 if quick else 1_000),
    }
    hv = figures["hypervolume"]
    targets = [
        target("report_s", report_s, f"report <= {REPORT_TARGET_S:g} s at 10,000 trials",
               report_s <= REPORT_TARGET_S if not quick else None),
        target(f"hypervolume_over_trials_s[{m}]", curve_s[m],
               f"<= {CURVE_TARGET_S:g} s at {CURVE_TRIALS:,} trials x 4 objectives",
               curve_s[m] <= CURVE_TARGET_S if m == CURVE_TRIALS else None),
        target("hypervolume.rel_diff", hv["rel_diff"], "moocore = HSO to 1e-12",
               hv["rel_diff"] <= 1e-12),
    ]  # fmt: skip
    notes = [f"quick: {n} trials; the time targets apply to the full run"] if quick else []
    return {"figures": figures, "targets": targets, "notes": notes}


def _moocore_vs_hso(m: int, k: int = 4, seed: int = 0) -> dict:
    """Hypervolume of ``m`` mutually non-dominated points in ``k``-D (on the unit sphere) by
    moocore (median of 5 calls) and by the reference HSO (one call), their ratio and agreement."""
    from nas.report import hypervolume
    from nas.report.pareto import _hypervolume_hso

    x = np.abs(np.random.default_rng(seed).normal(size=(m, k)))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    senses, ref = ["min"] * k, [1.1] * k
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        fast = hypervolume(x, ref, senses)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    slow = _hypervolume_hso(x, ref, senses)
    hso_s = time.perf_counter() - t0
    moocore_s = float(np.median(times))
    return {
        "points": m,
        "objectives": k,
        "moocore_s": moocore_s,
        "hso_s": hso_s,
        "hso_over_moocore": hso_s / moocore_s,
        "rel_diff": abs(fast - slow) / slow,
    }
