"""`nas bench campaign`: how much of a campaign's wall time x slots is spent outside the trials'
own work (build, measure, train), and the fixed cost per trial.

A real local Ray survey of ``n`` short trials on a tiny synthetic space, and the same on a
two-node loopback cluster (latency timing off: this measures orchestration, not measurement); per
trial, ``wall_s`` (the
trial function from start to row) comes from the table. Overhead = 1 - sum(wall_s) /
(campaign wall time x slots); fixed cost per trial = (campaign wall x slots - sum(wall_s)) / n. The
fraction for 30 s trials is extrapolated from that fixed cost: fixed / (30 + fixed). The fixed
cost splits into what a campaign pays once (start-up until its first trial starts, teardown after
its last ends) and the cost per trial in between (actor reuse, scheduling, reports, checkpoints,
table writes): ((wall - start-up - teardown) x slots - sum(wall_s)) / n. Also the
cost of recording a finished trial in the campaign table at row 5,000 against row 10.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from nas.bench.common import ROOT, target

__all__ = ["bench_campaign", "table_growth"]

SPACE = """
name: bench
base: {base}
data: {{dataset: synthetic, image_size: 32}}
train: {{epochs: {epochs}, batch_size: 64}}
objectives: {{val_acc: max}}
space:
  width: {{choice: [8, 12, 16, 20, 24, 32]}}
  depths: [1, 1, 1, 1]
  grn: {{choice: [true, false]}}
  stage:
    kernel: {{choice: [3, 5, 7], tie: true}}
"""


def bench_campaign(*, n: int = 6, epochs: int = 1, slots: int = 2, cluster: bool = False) -> dict:
    """A survey of ``n`` short trials on a local Ray with ``slots`` CPUs, or (``cluster``) on a
    two-node loopback cluster (``nas.campaign.loopback``) with one CPU per node."""
    import ray

    from nas.campaign import init_ray, run_campaign
    from nas.campaign.loopback import RayCluster
    from nas.campaign.runner import Runner
    from nas.campaign.table import read_table

    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "space.yaml"
        space.write_text(
            SPACE.format(base=ROOT / "spaces/presets/convnextv2_atto.yaml", epochs=epochs)
        )
        nodes = RayCluster(cpus=1).start() if cluster else None
        os.environ.update(nodes.auth_env() if nodes else {})  # the cluster's token, to join it
        runner = Path(tmp) / "runner.yaml"
        runner.write_text(
            f"max_concurrent: {slots}\ncpus_per_trial: 1\nlatency: off\nobject_store_mb: 128\n"
            + (f"address: {nodes.address}\n" if nodes else "")
        )
        started_ray = not ray.is_initialized()
        t_init = time.perf_counter()
        init_ray(Runner(num_cpus=slots, object_store_mb=128, address=nodes and nodes.address))
        init_s = time.perf_counter() - t_init
        try:
            t0, started = time.perf_counter(), time.time()
            folder = run_campaign(
                "survey", str(space), name="bench", runner_path=str(runner), n=n, seed=0,
                results=tmp, progress=False,
            )  # fmt: skip
            wall, ended = time.perf_counter() - t0, time.time()
            df = read_table(folder)
        finally:
            if started_ray:
                ray.shutdown()
            if nodes is not None:
                nodes.shutdown()
    busy = float(df["wall_s"].sum())
    capacity = wall * slots
    fixed = max(0.0, (capacity - busy) / len(df))
    # once per campaign: until the first trial starts, and after the last one ends
    startup = float(df["started_at"].min()) - started
    teardown = ended - float(df["finished_at"].max())
    per_trial = max(0.0, ((wall - startup - teardown) * slots - busy) / len(df))
    return {
        "trials": len(df),
        "slots": slots,
        "nodes": sorted(set(df["node"].dropna())) if "node" in df else [],
        "campaign_wall_s": wall,
        "ray_init_s": init_s,
        "trial_work_s_mean": busy / len(df),
        "overhead_fraction": 1 - busy / capacity,
        "fixed_cost_per_trial_s": fixed,
        "campaign_startup_s": startup,
        "campaign_teardown_s": teardown,
        "per_trial_cost_s": per_trial,
        "overhead_fraction_30s_trials": fixed / (30 + fixed),
    }


def table_growth(*, rows: int = 5000, early: int = 10, columns: int = 100) -> dict:
    """Cost of recording one finished trial in the campaign table at row ``early`` and at row
    ``rows``: mean wall time of ``add`` over the rows before each point (a whole rewrite cycle
    at the large size, so the amortised rewrites are counted), same row shape throughout."""
    from nas.campaign.table import CampaignTable

    def row(i: int) -> dict:
        cells = {f"arch.c{j:03d}": (i * j) % 7 for j in range(columns - 8)}
        history = [{"epoch": e, "val_acc": 0.5} for e in range(6)]
        return {"campaign": "g", "mode": "survey", "trial_id": f"t{i:06d}", "status": "ok",
                "val_acc": i / rows, "reason": None, "seed": 0, "history": history, **cells}  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        table = CampaignTable(Path(tmp) / "g")
        times = []
        for i in range(rows):
            t0 = time.perf_counter()
            table.add(row(i))
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        table._write()  # noqa: SLF001 - what recording a row cost when every add rewrote the table
        rewrite = time.perf_counter() - t0
    window = max(1, rows // 8)  # one rewrite cycle at this size
    small = sum(times[:early]) / early
    large = sum(times[rows - window :]) / window
    return {
        "rows": rows,
        "columns": columns,
        f"add_ms_at_row_{early}": small * 1e3,
        f"add_ms_at_row_{rows}": large * 1e3,
        "growth_ratio": large / small,
        f"full_rewrite_ms_at_row_{rows}": rewrite * 1e3,
        "total_s": sum(times),
    }


def bench(*, quick: bool, device: str = "cpu") -> dict:
    """``nas bench campaign``: the figures, and the overhead and table-growth targets."""
    res = bench_campaign(n=6 if quick else 12, epochs=1 if quick else 3)
    two = bench_campaign(n=6 if quick else 12, epochs=1 if quick else 3, cluster=True)
    growth = table_growth()
    frac = res["overhead_fraction_30s_trials"]
    targets = [
        target(
            "overhead_30s",
            frac,
            "overhead <= 10% for 30 s trials (extrapolated from the fixed cost)",
            frac <= 0.10,
        ),
        target(
            "per_trial_cost_s",
            res["per_trial_cost_s"],
            "cost per trial between the first start and the last end <= 1 s",
            res["per_trial_cost_s"] <= 1.0,
        ),
        target(
            "table_growth",
            growth["growth_ratio"],
            "cost of recording row 5,000 / row 10 <= 2",
            growth["growth_ratio"] <= 2.0,
        ),
    ]
    targets.append(
        target(
            "cluster_per_trial_cost_s",
            two["per_trial_cost_s"],
            "cost per trial on the 2-node loopback cluster (information; no target)",
            None,
        )
    )
    res = {
        **res,
        **{f"cluster_{k}": v for k, v in two.items()},
        **{f"table_{k}": v for k, v in growth.items()},
    }
    notes = [f"measured overhead fraction at these short trials: {res['overhead_fraction']:.0%}"]
    return {"figures": res, "targets": targets, "notes": notes}
