"""Probe: does kernel 13 beat kernel 3 on pathfinder? One run per (preset, variant), 1 thread.

    PYTHONPATH=. python scripts/probe_pathfinder.py OUT.jsonl PRESET EPOCHS LR WARMUP JSON_SETTINGS
Appends one JSON line per run: settings, val_acc per epoch, wall time.
"""

import json
import sys
import time

import torch

from nas.models.build import build_model
from nas.space.candidate import load_candidate
from nas.train import TrainConfig, train
from nas.train.data import DataConfig, load_data

torch.set_num_threads(1)
out, preset, epochs, lr, warmup, settings = sys.argv[1:7]
settings = json.loads(settings)
size = settings.pop("image_size", 32)
cand = load_candidate(preset)
t0 = time.perf_counter()
data = load_data(
    DataConfig.from_dict({"dataset": "pathfinder", "image_size": size, "pathfinder": settings})
).with_channels(cand.in_chans)
gen_s = time.perf_counter() - t0
torch.manual_seed(0)
cfg = TrainConfig(epochs=int(epochs), lr=float(lr), warmup_epochs=float(warmup), batch_size=64)
curve = []


def report(m):
    curve.append(round(m["val_acc"], 3))
    print(preset, m.get("epoch"), m["val_acc"], round(time.perf_counter() - t0), flush=True)


res = train(build_model(cand), data, cfg, report=report)
row = {
    "preset": preset,
    "size": size,
    **settings,
    "epochs": int(epochs),
    "lr": float(lr),
    "warmup": float(warmup),
    "val_acc": curve,
    "best": max(curve),
    "gen_s": round(gen_s, 1),
    "wall_s": round(time.perf_counter() - t0),
    "status": res.status,
}
with open(out, "a") as f:
    f.write(json.dumps(row) + "\n")
