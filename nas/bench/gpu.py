"""``nas bench gpu``: the CUDA paths in one short run (under ~8 minutes on one GPU), one PASS/FAIL
line per item. Where no CUDA GPU exists it says so in one line and exits 0.

1. training: one candidate for 2 epochs on synthetic data with bf16 AMP and channels_last;
2. latency: deploy form, CUDA-synchronised, batch 1 and 64, fp32 and bf16; CUDA peak memory of a
   training step;
3. kernels: the k31/k3 time ratio of a depthwise stack at 56x56 (R=32 channels x batch), with and
   without channels_last;
4. campaign: an 8-trial local survey with ``runners/gpu.yaml`` (0.25 GPU per trial, the latency
   service on a whole GPU when there is a second one, else inline).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from nas.bench.common import ROOT, target

__all__ = ["bench"]


def _candidate():
    from nas.space.candidate import Candidate, load_candidate

    base = load_candidate(ROOT / "spaces" / "presets" / "convnextv2_atto.yaml")
    return Candidate.from_params({"image_size": 64, "num_classes": 10}, base=base)


def _train() -> dict:
    from nas.models.build import build_model
    from nas.train import TrainConfig, train
    from nas.train.config import DataConfig
    from nas.train.data import load_data

    data = load_data(DataConfig(dataset="synthetic", image_size=64, limit=2048), device="cuda")
    cfg = TrainConfig(epochs=2, batch_size=128, device="cuda", amp=True, channels_last=True)
    t0 = time.perf_counter()
    result = train(build_model(_candidate()).cuda(), data, cfg)
    return {"status": result.status, "epochs": len(result.history),
            "images_per_s": result.history[-1]["images_per_s"] if result.history else None,
            "train_s": time.perf_counter() - t0}  # fmt: skip


def _latency() -> dict:
    from nas.measure import LatencyProtocol, measure_candidate

    out = {}
    for batch in (1, 64):
        for dtype in ("float32", "bfloat16"):
            proto = LatencyProtocol(device="cuda", image_size=64, batch=batch, dtype=dtype)
            row = measure_candidate(_candidate(), proto=proto, memory_batch=batch)
            out[f"b{batch}_{dtype}_ms"] = row["latency_ms_p50"]
            out[f"b{batch}_train_peak_mb"] = (row["train_peak_bytes"] or 0) / 2**20
            out.setdefault("status", row["status"])
    return out


def _kernels() -> dict:
    from nas.bench.common import interleaved, paired_ratio

    x = {f: torch.randn(32, 32, 56, 56, device="cuda").to(memory_format=f)
         for f in (torch.contiguous_format, torch.channels_last)}  # fmt: skip
    fns = {}
    for k in (3, 31):
        m = torch.nn.Sequential(*(torch.nn.Conv2d(32, 32, k, padding=k // 2, groups=32)
                                  for _ in range(8))).cuda()  # fmt: skip
        fns[f"nchw/k{k}"] = lambda m=m: m(x[torch.contiguous_format])
        mc = m.to(memory_format=torch.channels_last)
        fns[f"cl/k{k}"] = lambda m=mc: m(x[torch.channels_last])
    with torch.inference_mode():
        times = interleaved(fns, rounds=5, device="cuda", warmup_iters=5, warmup_s=0.5)
    return {f"{f}_k31_over_k3": paired_ratio(times, f"{f}/k31", f"{f}/k3") for f in ("nchw", "cl")}


def _campaign() -> dict:
    from nas.campaign import run_campaign
    from nas.campaign.table import read_table

    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "space.yaml"
        space.write_text((ROOT / "spaces" / "quickstart.yaml").read_text().replace(
            "base: presets/", f"base: {ROOT / 'spaces' / 'presets'}/"))  # fmt: skip
        t0 = time.perf_counter()
        folder = run_campaign("survey", str(space), name="gpu", n=8, results=tmp, progress=False,
                              runner_path=str(ROOT / "runners" / "gpu.yaml"))  # fmt: skip
        df = read_table(folder)
        return {"trials": len(df), "ok": int((df["status"] == "ok").sum()),
                "wall_s": time.perf_counter() - t0}  # fmt: skip


def bench(*, quick: bool = True, device: str = "cuda") -> dict:
    if not torch.cuda.is_available():
        return {"figures": {}, "targets": [], "skipped": "no CUDA GPU here: nothing to check",
                "notes": []}  # fmt: skip
    figures, targets = {"gpu": torch.cuda.get_device_name()}, []
    for name, fn, ok in (
        ("train_bf16_channels_last", _train, lambda r: r["status"] == "ok" and r["epochs"] == 2),
        ("latency_and_peak_memory", _latency, lambda r: r["status"] == "ok"),
        ("kernels_56x56_R32", _kernels, lambda r: all(v > 0 for v in r.values())),
        ("campaign_8_trials_gpu_yaml", _campaign, lambda r: r["ok"] == r["trials"] == 8),
    ):
        try:
            result = fn()
            passed = bool(ok(result))
        except Exception as e:  # noqa: BLE001 - one failing item must not hide the others
            result, passed = {"error": f"{type(e).__name__}: {e}"}, False
        figures[name] = result
        targets.append(target(name, "PASS" if passed else "FAIL", "runs on CUDA", passed))
    return {"figures": figures, "targets": targets, "notes": []}
