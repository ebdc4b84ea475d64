"""A survey campaign folder whose accuracy and latency are a known function of the params (plus
noise), for the surrogate and replay tests: the truth is known, so the surrogate's ranking and a
replay's verdict can be checked against it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import PRESETS

SPACE = f"""
name: synthetic
base: {PRESETS / "convnextv2_atto.yaml"}
data: {{dataset: digits, image_size: 32, crop_pad: 0}}
train: {{epochs: 1, batch_size: 32}}
objectives: {{val_acc: max, latency_ms_p50: min}}
constraints: {{params_m: [0, 5], macs_m: [0, 60]}}
space:
  macro: plain
  width: {{choice: [16, 24, 32]}}
  depths: {{choice: [[1, 1, 2, 1], [1, 1, 3, 1]]}}
  grn: {{choice: [true, false]}}
  head_dim: 8
  stage:
    kernel: {{choice: [3, 7, 13]}}
    mixer: {{choice: [static, dynamic, mixed]}}
"""


class Truth:
    """The known function as a surrogate stand-in (``predict`` as ``Surrogate.predict``), noise
    free: accuracy grows with log-MACs and, stage by stage, with 'mixed' mixers and kernel 7;
    latency grows with MACs. The per-stage choices are additive and rarely all right at random
    (1 in 3^8), so a model-based sampler that learns them should beat random."""

    models = {"val_acc": None, "latency_ms_p50": None}

    @staticmethod
    def values(params: dict, costs: dict) -> dict[str, float]:
        mixers = [params[f"stage.{i}.mixer"] for i in range(4)]
        kernels = [params[f"stage.{i}.kernel"] for i in range(4)]
        acc = (
            0.70
            + 0.04 * math.log(costs["macs_m"])
            + 0.02 * mixers.count("mixed")
            - 0.01 * mixers.count("dynamic")
            + 0.015 * kernels.count(7)
            + 0.01 * params["grn"]
        )
        latency = (
            0.5 + 0.6 * costs["macs_m"] + 0.1 * mixers.count("dynamic") + 0.05 * kernels.count(13)
        )
        return {"val_acc": acc, "latency_ms_p50": latency}

    def predict(self, space, params):
        from nas.surrogate.features import analytic_costs

        out = []
        for p in params:
            costs = analytic_costs(space, p)
            out.append(None if costs is None else {**costs, **self.values(p, costs)})
        return out


def write_survey(folder: Path, n: int, *, seed: int = 0, noise: float = 0.01) -> Path:
    """A survey folder of ``n`` ok rows: trials.parquet, campaign.json, space.yaml."""
    from nas.campaign.plan import plan_survey
    from nas.space.parse import load_space

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "space.yaml").write_text(SPACE)
    space = load_space(folder / "space.yaml")
    plans, _ = plan_survey(space, n, seed)
    rng = np.random.default_rng(seed + 1)
    rows = []
    for i, (plan, point) in enumerate(
        zip(plans, Truth().predict(space, [p["params"] for p in plans]))
    ):
        rows.append(
            {
                "campaign": folder.name,
                "mode": "survey",
                "trial_id": f"t{i:04d}",
                "candidate_id": plan["candidate"].get("id", f"c{i}"),
                "seed": seed,
                "status": "ok",
                **point,
                "val_acc": point["val_acc"] + rng.normal(0, noise),
                "latency_ms_p50": point["latency_ms_p50"] * (1 + rng.normal(0, noise)),
                **{
                    f"param.{k}": json.dumps(v) if isinstance(v, list) else v
                    for k, v in plan["params"].items()
                },
            }
        )
    pd.DataFrame(rows).to_parquet(folder / "trials.parquet")
    spec = {"objectives": dict(space.objectives), "constraints": dict(space.constraints)}
    manifest = {"campaign": folder.name, "mode": "survey", "spec": spec, "n": n, "seed": seed}
    (folder / "campaign.json").write_text(json.dumps(manifest))
    return folder
