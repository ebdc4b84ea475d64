"""The benchmark registry: ``run_bench(NAME)`` runs one (or ``all``), records provenance and
writes ``results/bench/NAME.json``; ``format_result`` prints a result's figures and targets."""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from nas.bench.campaign import bench as bench_campaign
from nas.bench.common import CPU_THREADS
from nas.bench.cost import bench_cost
from nas.bench.fcmae import bench_fcmae
from nas.bench.gpu import bench as bench_gpu
from nas.bench.grn import bench_grn
from nas.bench.kernels import bench_kernels
from nas.bench.latency import bench_latency
from nas.bench.reparam import bench_reparam
from nas.bench.report import bench_report
from nas.bench.revcol import bench_revcol
from nas.bench.scale import bench as bench_scale
from nas.bench.surrogate import bench as bench_surrogate
from nas.bench.trainer import bench as bench_trainer
from nas.errors import UserError

__all__ = ["BENCHES", "format_result", "run_bench"]

log = logging.getLogger(__name__)


BENCHES: dict[str, Callable[..., dict]] = {
    "cost": lambda quick, device="cpu": bench_cost(
        n_fast=50 if quick else 200, n_full=5 if quick else 10
    ),  # fmt: skip
    "latency": lambda quick, device="cpu": bench_latency(n=5 if quick else 10, device=device),
    "reparam": bench_reparam,
    "revcol": bench_revcol,
    "kernels": bench_kernels,
    "grn": bench_grn,
    "fcmae": bench_fcmae,
    "trainer": bench_trainer,
    "campaign": bench_campaign,
    "surrogate": bench_surrogate,
    "gpu": bench_gpu,
    "report": bench_report,
    "scale": bench_scale,
    "all": lambda quick, device="cpu": run_bench("all", quick=quick, device=device),
}


def _provenance(quick: bool, device: str) -> dict:
    prov = dict(torch=torch.__version__, device=device, quick=quick)
    prov |= dict(threads=CPU_THREADS if device == "cpu" else torch.get_num_threads())
    prov |= dict(date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    prov |= dict(processor=platform.processor() or platform.machine(), cpu_count=os.cpu_count())
    prov |= dict(platform=platform.platform(), python=platform.python_version())
    if hasattr(os, "getloadavg"):
        prov["load_avg_1_5_15"] = [round(v, 2) for v in os.getloadavg()]
    if device.startswith("cuda"):
        prov["gpu"] = torch.cuda.get_device_name()
    return prov


def run_bench(
    name: str, *, quick: bool, device: str = "cpu", out_dir: str | Path = "results/bench"
) -> dict:
    """Run one benchmark and write ``OUT_DIR/NAME.json``; ``all``: every one, a dict by name."""
    if name not in BENCHES:
        raise UserError(f"unknown benchmark {name!r}; expected one of {sorted(BENCHES)}")
    if name == "all":
        out = {}
        for other in (n for n in BENCHES if n != "all"):
            try:
                out[other] = run_bench(other, quick=quick, device=device, out_dir=out_dir)
            except Exception as e:  # noqa: BLE001 - one failing benchmark must not hide the others
                log.warning("bench %s failed: %s", other, e)
                out[other] = {"error": f"{type(e).__name__}: {e}", "figures": {}, "targets": []}
        return out
    from nas.device import resolve_device

    device = str(resolve_device(device))
    t0 = time.perf_counter()
    result = {"name": name, **BENCHES[name](quick=quick, device=device)}
    result["provenance"] = _provenance(quick, device) | {"bench_s": time.perf_counter() - t0}
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    log.info("bench %s written to %s", name, path)
    return result


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    return str(v)


def format_result(name: str, result: dict) -> list[str]:
    """Printable lines: a header, the figures and notes, then one line per target that ends the
    list: ``label value (target text: met|MISSED|n/a)``. ``all``: every benchmark's lines."""
    if name == "all" and "figures" not in result:
        return [line for k, r in result.items() for line in format_result(k, r)]
    if result.get("skipped"):
        return [f"bench {name}: skipped: {result['skipped']}"]
    prov = result.get("provenance", {})
    lines = [
        f"bench {name} ({'quick' if prov.get('quick') else 'full'}, {prov.get('device', '?')}, "
        f"torch {prov.get('torch', '?')}, {prov.get('threads', '?')} thread(s), "
        f"load {prov.get('load_avg_1_5_15', '?')})"
    ]
    if "error" in result:
        lines.append(f"  error: {result['error']}")
    lines += [f"  {k}: {_fmt(v)}" for k, v in result.get("figures", {}).items()]
    lines += [f"  note: {n}" for n in result.get("notes", [])]
    for t in result.get("targets", []):
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        lines.append(f"{t['label']} {_fmt(t['value'])} (target {t['text']}: {verdict})")
    return lines
