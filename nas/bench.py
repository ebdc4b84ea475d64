"""Benchmarks of the explorer's own claims: cost fast path, latency repeatability, re-param speed,
RevCol memory, large depthwise kernels, GRN overhead and trainer overhead.

Every timing is side by side in one run: the variants are interleaved (the order reversed every
round) and a figure is a median (ratios: the median of the per-round paired ratios), so machine
noise hits both sides alike. A result has ``figures``, ``targets`` (``label``, ``value``, ``text``,
``met``: True/False, None where n/a), ``notes`` and ``provenance``; ``run_bench`` writes it to
``results/bench/NAME.json``. CPU timings use one thread (stack.md T11).
Run: ``python -m nas.bench NAME [--full] [--cuda]``.
"""

from __future__ import annotations

import copy
import datetime
import inspect
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from nas.errors import UserError

__all__ = ["BENCHES", "format_result", "kendall_tau", "run_bench"]

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "spaces" / "seeds.yaml"
CPU_THREADS = 1


# ---------------------------------------------------------------------- helpers
def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b of two equally long sequences (ties allowed; nan if one is constant)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"kendall_tau: expected two sequences of equal length >= 2, got {a}, {b}")
    s = n_a = n_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da = (a[i] > a[j]) - (a[i] < a[j])
            db = (b[i] > b[j]) - (b[i] < b[j])
            s, n_a, n_b = s + da * db, n_a + (da != 0), n_b + (db != 0)
    return s / math.sqrt(n_a * n_b) if n_a and n_b else math.nan


def _target(label: str, value, text: str, met: bool | None) -> dict:
    return {"label": label, "value": value, "text": text, "met": met}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _interleaved(fns: dict, *, rounds: int, device="cpu", warmup_iters=10, warmup_s=1.0) -> dict:
    """Seconds of one call of each function, ``rounds`` times, the order reversed every round,
    after a warm-up of at least ``warmup_iters`` calls and ``warmup_s`` seconds each."""
    for fn in fns.values():
        start, n = time.perf_counter(), 0
        while n < warmup_iters or time.perf_counter() - start < warmup_s:
            fn()
            n += 1
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        for name in list(fns)[:: 1 if r % 2 == 0 else -1]:
            _sync(device)
            t0 = time.perf_counter()
            fns[name]()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def _ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median of the paired per-round ratios a/b (robust to drifts of the machine)."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def _ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def _threads(device: str):
    from nas.measure import pinned_threads

    return pinned_threads(CPU_THREADS if device == "cpu" else torch.get_num_threads())


def _seed_candidates(n: int, seed: int = 0) -> list:
    import numpy as np

    from nas.space import load_space

    samples, _ = load_space(SEEDS).sample_distinct(n, np.random.default_rng(seed))
    return [s.candidate for s in samples]


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine, so that folding them is visible in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                for t, lo, hi in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 2.0)):
                    t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    return model


# ---------------------------------------------------------------------- cost
def _bench_cost(*, n_fast: int = 200, n_full: int = 10, seed: int = 0, rounds: int = 3) -> dict:
    """fast_cost on ``n_fast`` seed candidates against build + fvcore (both forms) on ``n_full``
    of them, interleaved: every round one fast pass over all, then a share of the full ones."""
    from nas.measure import count_macs, count_params, fast_cost
    from nas.model import build_model, reparameterize

    cands = _seed_candidates(n_fast, seed)

    def full(c) -> dict:
        torch.manual_seed(0)
        model = build_model(c)
        deploy = reparameterize(model)
        x = torch.randn(1, c.in_chans, c.image_size, c.image_size)
        out = {"params": count_params(model), "params_deploy": count_params(deploy)}
        return out | {"macs": count_macs(model, x)[0], "macs_deploy": count_macs(deploy, x)[0]}

    fast_rates, full_s, fast, measured = [], 0.0, {}, {}
    with _threads("cpu"):
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
        _target("speedup", figures["speedup"], "fast/full, informative", None),
        _target("agreement", not mismatches, "params exact, MACs within 1%", not mismatches),
        _target("fast_per_s", fast_per_s, ">= 50 candidates/s on one core", fast_per_s >= 50),
    ]
    return {"figures": figures, "targets": targets, "notes": []}


# ---------------------------------------------------------------------- latency
def _latency_worker(args: dict) -> dict:
    """In a fresh process: deploy-form latency (LatencyProtocol defaults) of seed candidates."""
    from nas.measure import LatencyProtocol, measure_latency
    from nas.model import build_model, reparameterize

    proto = LatencyProtocol(device=args.get("device", "cpu"), image_size=args["image_size"])
    ids, p50 = [], []
    for c in _seed_candidates(args["n"], args.get("seed", 0)):
        torch.manual_seed(0)
        ids.append(c.id)
        p50.append(measure_latency(reparameterize(build_model(c)), proto)["latency_ms_p50"])
    return {"ids": ids, "p50_ms": p50}


def _bench_latency(*, n: int, device: str = "cpu", processes: int = 3, size: int = 32) -> dict:
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
        _target("cv_max", max(cvs), "<= 0.05 (CV of medians across processes)", max(cvs) <= 0.05),
        _target("tau_min", min(taus), ">= 0.9 (Kendall tau, every pair)", min(taus) >= 0.9),
    ]
    return {"figures": figures, "targets": targets, "notes": []}


# ---------------------------------------------------------------------- reparam
def _bench_reparam(*, quick: bool, device: str = "cpu") -> dict:
    from nas.blocks import RepLKBlock
    from nas.candidate import Candidate, load_candidate
    from nas.measure import count_macs
    from nas.model import build_model, reparameterize

    dim, res, size = (64, 16, 64) if quick else (128, 32, 128)
    rep31b = load_candidate(ROOT / "spaces" / "presets" / "replknet_31b.yaml")
    style = Candidate(
        block="replk", depths=(1, 1, 2, 1), widths=(32, 64, 128, 256), kernels=(31, 29, 27, 13),
        small_kernels=(5, 5, 5, 5), grn=False, num_classes=10, image_size=32,
    )  # fmt: skip

    def stack() -> nn.Module:
        return nn.Sequential(*(RepLKBlock(dim, kernel_size=31, small_kernel=5) for _ in range(4)))

    cases = {  # name: (factory, input shape, timed rounds)
        f"replk_stack_d{dim}_r{res}": (stack, (1, dim, res, res), 30),
        f"replknet_31b_{size}": (lambda: build_model(rep31b), (1, 3, size, size), 10 if quick else 30),
        "replk_candidate_32": (lambda: build_model(style), (1, 3, 32, 32), 30),
    }  # fmt: skip
    figures, targets = {}, []
    for name, (make, shape, rounds) in cases.items():
        torch.manual_seed(0)
        train = _randomize_bn(make()).eval()
        deploy = reparameterize(train)
        x = torch.randn(shape)
        macs_ratio = count_macs(deploy, x)[0] / count_macs(train, x)[0]
        fns, cl = {}, torch.channels_last
        for fmt, suffix in ((torch.contiguous_format, ""), (cl, "_cl")):  # NCHW and channels-last
            xf = x.to(device, memory_format=fmt)
            for form, m in (("train", train), ("deploy", deploy)):
                m = copy.deepcopy(m).to(device, memory_format=fmt)
                fns[form + suffix] = lambda m=m, xf=xf: m(xf)
        with torch.inference_mode(), _threads(device):
            out_t, out_d = fns["train"](), fns["deploy"]()
            times = _interleaved(fns, rounds=rounds, device=device)
        diff = (out_t - out_d).abs().max().item()
        rel = diff / max(out_t.abs().max().item(), 1e-30)
        row = figures[name] = {f"{k}_ms": _ms(v) for k, v in times.items()}
        for suffix, layout in (("", "NCHW"), ("_cl", "channels_last")):
            ratio = row["ratio" + suffix] = _ratio(times, "deploy" + suffix, "train" + suffix)
            text = f"deploy/train <= 0.85 ({layout})"
            targets.append(_target(f"{name}.ratio{suffix}", ratio, text, ratio <= 0.85))
        row |= dict(macs_ratio=macs_ratio, rounds=rounds, max_abs_diff=diff, rel_diff=rel)
        ok = diff <= 1e-5 or rel <= 1e-5
        targets.append(_target(f"{name}.diff", diff, f"<= 1e-5 abs or rel (rel {rel:.2g})", ok))
    notes = ["replknet_31b timed over 10 interleaved rounds in quick mode"] if quick else []
    return {"figures": figures, "targets": targets, "notes": notes}


# ---------------------------------------------------------------------- revcol
def _bench_revcol(*, quick: bool, device: str = "cpu", columns=(1, 2, 4, 8)) -> dict:
    from nas.candidate import Candidate
    from nas.memory import saved_bytes
    from nas.model import build_model

    depths, widths, batch = ((1, 1, 2, 1), (16, 32, 64, 128), 8) if quick else ((2, 2, 4, 2), (32, 64, 128, 256), 16)  # fmt: skip
    size, rounds, cuda = 64, 7, device.startswith("cuda")
    figures: dict = {"shape": dict(depths=depths, widths=widths, image=size, batch=batch)}
    for n in columns:
        models = {}
        for rev in (True, False):
            c = Candidate(
                macro="revcol", block="convnext", columns=n, reversible=rev, depths=depths,
                widths=widths, kernels=(3,) * 4, grn=False, layer_scale=1e-6, num_classes=10,
                image_size=size,
            )  # fmt: skip
            torch.manual_seed(0)
            models["rev" if rev else "plain"] = build_model(c).to(device).train()
        x = torch.randn(batch, 3, size, size, device=device)
        row = {f"saved_{k}": saved_bytes(m, x) for k, m in models.items()}

        def step(m: nn.Module, x: torch.Tensor = x) -> None:
            m.zero_grad(set_to_none=True)
            m(x).float().square().mean().backward()

        for k, m in models.items() if cuda else ():
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            step(m)
            torch.cuda.synchronize()
            row[f"cuda_peak_{k}"] = torch.cuda.max_memory_allocated() - base
        with _threads(device):
            fns = {k: (lambda m=m: step(m)) for k, m in models.items()}
            times = _interleaved(fns, rounds=rounds, device=device, warmup_iters=2, warmup_s=0.3)
        row |= dict(step_ms_rev=_ms(times["rev"]), step_ms_plain=_ms(times["plain"]))
        row |= dict(saved_ratio=row["saved_rev"] / row["saved_plain"])
        row |= dict(step_ratio=_ratio(times, "rev", "plain"))
        figures[f"columns_{n}"] = row
    last, two = figures[f"columns_{columns[-1]}"], figures.get("columns_2")
    growth = last["saved_rev"] / two["saved_rev"] - 1 if two else math.nan
    figures["rev_saved_growth_2_to_max"] = growth
    sr, st, m = last["saved_ratio"], last["step_ratio"], columns[-1]
    targets = [
        _target(f"saved_ratio@{m}", sr, "saved bytes rev/plain <= 0.1", sr <= 0.1),
        _target("rev_saved_growth", growth, f"2 -> {m} columns <= 10%", growth <= 0.10),
        _target(f"step_ratio@{m}", st, "train step rev/plain <= 1.4", st <= 1.4),
    ]
    return {"figures": figures, "targets": targets, "notes": []}


# ---------------------------------------------------------------------- kernels
def _bench_kernels(*, quick: bool, device: str = "cpu") -> dict:
    cuda = device.startswith("cuda")
    ks = (3, 7, 13, 31) if quick else (3, 5, 7, 9, 13, 17, 21, 27, 31)
    if cuda:
        shapes = [(64, 384, r, r) for r in (16, 32, 64)]
        backends = ["eager", "channels_last", "compile", "bf16", "bf16_channels_last"]
    else:
        shapes = [(1, 64, 16, 16)] if quick else [(1, 128, 32, 32)]
        backends = ["eager", "channels_last"] + ([] if quick else ["compile"])
    notes = [] if cuda or not quick else ["compile skipped in quick mode on CPU (~26 s cold)"]

    def make(backend: str, k: int, c: int) -> nn.Module:
        torch.manual_seed(0)
        m = nn.Sequential(*(nn.Conv2d(c, c, k, padding=k // 2, groups=c) for _ in range(24)))
        m = m.to(device, torch.bfloat16 if backend.startswith("bf16") else torch.float32)
        if backend.endswith("channels_last"):
            m = m.to(memory_format=torch.channels_last)
        return torch.compile(m) if backend == "compile" else m

    figures, targets = {}, []
    for shape in shapes:
        fns = {}
        for b in backends:
            fmt = torch.channels_last if b.endswith("channels_last") else torch.contiguous_format
            dt = torch.bfloat16 if b.startswith("bf16") else torch.float32
            x = torch.randn(shape, device=device, dtype=dt).to(memory_format=fmt)
            models = {k: make(b, k, shape[1]) for k in ks}
            fns |= {f"{b}/k{k}": (lambda m=m, x=x: m(x)) for k, m in models.items()}
        with torch.inference_mode(), _threads(device):
            times = _interleaved(fns, rounds=5, device=device, warmup_iters=3, warmup_s=0.2)
        key = "x".join(map(str, shape))
        for b in backends:
            row = {f"k{k}/k3": _ratio(times, f"{b}/k{k}", f"{b}/k3") for k in ks[1:]}
            figures[f"{key}/{b}"] = row | {f"k{k}_ms": _ms(times[f"{b}/k{k}"]) for k in (3, 31)}
        if cuda and shape[-1] != 32:
            continue
        for b in backends:
            r = figures[f"{key}/{b}"]["k31/k3"]
            text = "<= 6x at R=32 on GPU" + ("" if cuda else f"; n/a on CPU ({key})")
            targets.append(_target(f"{b}.k31/k3", r, text, (r <= 6) if cuda else None))
        if cuda:
            best = min(figures[f"{key}/{b}"]["k31/k3"] for b in backends)
            targets.append(_target("best.k31/k3", best, "<= 6x at R=32, best backend", best <= 6))
    return {"figures": figures, "targets": targets, "notes": notes}


# ---------------------------------------------------------------------- GRN
def _bench_grn(*, quick: bool, device: str = "cpu") -> dict:
    from nas.blocks import ConvNeXtBlock

    dim, res, batch = (64, 32, 8) if quick else (96, 56, 16)
    x = torch.randn(batch, dim, res, res, device=device)
    fns, modes = {}, ["eager"] + ([] if quick else ["compile"])
    for mode in modes:
        for grn in (True, False):
            torch.manual_seed(0)
            m = ConvNeXtBlock(dim, mlp_ratio=4.0, grn=grn).to(device).train()
            m = torch.compile(m) if mode == "compile" else m

            def step(m=m) -> None:
                m.zero_grad(set_to_none=True)
                m(x).square().mean().backward()

            fns[f"{mode}/{'grn' if grn else 'plain'}"] = step
    with _threads(device):
        times = _interleaved(fns, rounds=15, device=device, warmup_iters=3, warmup_s=0.5)
    figures: dict = {"shape": [batch, dim, res, res], "hidden": 4 * dim}
    targets = []
    for mode in modes:
        ratio = _ratio(times, f"{mode}/plain", f"{mode}/grn")  # throughput GRN / no GRN
        per_s = {f"{k}_img_per_s": batch / statistics.median(times[f"{mode}/{k}"]) for k in ("grn", "plain")}  # fmt: skip
        figures[mode] = per_s | {"throughput_ratio": ratio}
        met = ratio >= 0.9 if mode == "eager" else None
        targets.append(_target(f"{mode}.grn/plain", ratio, "throughput >= 0.9 (eager)", met))
    notes = ["compiled variant skipped in quick mode"] if quick else []
    return {"figures": figures, "targets": targets, "notes": notes}


# ---------------------------------------------------------------------- trainer
def _bench_trainer(*, quick: bool, device: str = "cpu") -> dict:
    try:
        from nas.bench_trainer import bench_trainer
    except ImportError as e:
        raise UserError(f"bench 'trainer' needs nas.bench_trainer.bench_trainer: {e}") from None
    kwargs = dict(steps=5, warmup=2, repeats=5) if quick else dict(steps=30, repeats=5)
    accepted = inspect.signature(bench_trainer).parameters
    kwargs = {k: v for k, v in {**kwargs, "device": device}.items() if k in accepted}
    with _threads(device):
        res = bench_trainer(**kwargs)
    ratio = res["ratio"]
    targets = [_target("ratio", ratio, "trainer/baseline throughput >= 0.95", ratio >= 0.95)]
    return {"figures": res, "targets": targets, "notes": []}


def _bench_campaign(*, quick: bool, device: str = "cpu") -> dict:
    from nas.bench_campaign import bench_campaign

    res = bench_campaign(n=6 if quick else 12, epochs=1 if quick else 3)
    frac, fixed = res["overhead_fraction_30s_trials"], res["fixed_cost_per_trial_s"]
    targets = [
        _target(
            "overhead_30s",
            frac,
            "overhead <= 10% for 30 s trials (extrapolated from the fixed cost)",
            frac <= 0.10,
        ),
        _target("fixed_cost_s", fixed, "fixed cost per trial <= 2 s", fixed <= 2.0),
    ]
    notes = [f"measured overhead fraction at these short trials: {res['overhead_fraction']:.0%}"]
    return {"figures": res, "targets": targets, "notes": notes}


# ---------------------------------------------------------------------- registry
BENCHES: dict[str, Callable[..., dict]] = {
    "cost": lambda quick, device="cpu": _bench_cost(
        n_fast=50 if quick else 200, n_full=5 if quick else 10
    ),  # fmt: skip
    "latency": lambda quick, device="cpu": _bench_latency(n=5 if quick else 10, device=device),
    "reparam": _bench_reparam,
    "revcol": _bench_revcol,
    "kernels": _bench_kernels,
    "grn": _bench_grn,
    "trainer": _bench_trainer,
    "campaign": _bench_campaign,
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
    from nas.measure import resolve_device

    device = resolve_device(device)
    t0 = time.perf_counter()
    result = {"name": name, **BENCHES[name](quick=quick, device=device)}
    result["provenance"] = _provenance(quick, device) | {"bench_s": time.perf_counter() - t0}
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    log.info("bench %s written to %s", name, path)
    return result


# ---------------------------------------------------------------------- printing
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


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_latency_worker":
        print(json.dumps(_latency_worker(json.loads(sys.argv[2]))))
    elif len(sys.argv) >= 2:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        dev = "cuda" if "--cuda" in sys.argv else "cpu"
        res = run_bench(sys.argv[1], quick="--full" not in sys.argv, device=dev)
        print("\n".join(format_result(sys.argv[1], res)))
    else:
        sys.exit(f"usage: python -m nas.bench NAME [--full] [--cuda]; NAME in {sorted(BENCHES)}")
