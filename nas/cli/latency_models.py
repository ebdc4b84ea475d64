"""``nas latency-model fit``: the block-level latency predictor of a space on this device (the
logic lives in ``nas.measure.latency_fit``)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from nas.cli.flags import EPILOG, positive_int
from nas.errors import UserError

__all__ = ["add_latency_model"]


def add_latency_model(sub) -> None:
    m = sub.add_parser(
        "latency-model",
        help="a block-level latency predictor fitted on this device (latency: {mode: predict})",
        epilog=EPILOG,
        description="nas latency-model fit SPACE --out PATH: time the parts (stem layers, "
        "transitions, blocks, heads, RevCol fusion) of candidates drawn from SPACE under the "
        "runner's latency protocol, fit a lookup table with per-block regressions, check it on "
        "whole candidates the fit never saw, and save it as JSON with its device and quality.",
    )
    actions = m.add_subparsers(dest="action", metavar="ACTION", required=True)
    f = actions.add_parser("fit", help="fit and check a latency model", epilog=EPILOG)
    f.add_argument("space", help="design-space YAML whose blocks the model covers")
    f.add_argument("--out", required=True, help="the model file to write (JSON)")
    f.add_argument("--runner", default=None, help="runner YAML: its latency protocol")
    f.add_argument("--budget-s", type=float, default=600.0, help="part-timing budget (600)")
    f.add_argument("-n", type=positive_int, default=64, help="candidates to fit on (64)")
    f.add_argument("--check", type=positive_int, default=50, help="held-out candidates (50)")
    f.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    f.set_defaults(func=cmd_latency_model_fit)


def cmd_latency_model_fit(args) -> int:
    import numpy as np
    import torch

    from nas.campaign.runner import load_runner
    from nas.measure.latency import LatencyProtocol
    from nas.measure.latency_fit import fit_latency_model, real_timers
    from nas.space import load_space

    if args.budget_s <= 0:
        raise UserError(f"--budget-s: expected a positive number of seconds, got {args.budget_s}")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UserError(f"--out: {out.parent}: no such folder")
    runner, space = load_runner(args.runner), load_space(args.space)
    samples, _ = space.sample_distinct(args.n + args.check, np.random.default_rng(args.seed))
    cands = [s.candidate for s in samples]
    size = cands[0].image_size if cands else space.base.image_size
    proto = LatencyProtocol(device=runner.device, image_size=size, **runner.latency_settings())
    meta = {
        "space": str(Path(args.space).resolve()),
        "device": runner.device,
        "device_name": torch.cuda.get_device_name() if runner.device == "cuda" else None,
        "host": platform.node(),
        "processor": platform.processor() or platform.machine(),
        "torch_version": torch.__version__,
        "protocol": {"image_size": size, **runner.latency_settings()},
    }
    time_parts, time_whole = real_timers(proto)
    model = fit_latency_model(
        cands[: args.n], cands[args.n :], proto=proto, time_parts=time_parts,
        time_whole=time_whole, budget_s=args.budget_s, meta=meta,
    )  # fmt: skip
    model.save(out)
    print(json.dumps({k: v for k, v in model.meta.items() if k != "protocol"}, default=str))
    return 0
