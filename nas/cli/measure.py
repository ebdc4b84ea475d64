"""``nas measure``: one measurement row per candidate (costs, latency and its relative and
predicted forms, proxies, feature diversity)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nas.cli.commands import _targets, fit_to_data
from nas.errors import UserError


def _reference(args, base):
    """``nas measure``'s reference: ``--reference`` (a candidate YAML; ``off``: none), else the
    space's base candidate (None for a candidate target)."""
    from nas.space.candidate import CandidateError, load_candidate

    if args.reference == "off" or args.no_latency:
        return None
    if args.reference is None:
        return base
    if not Path(args.reference).is_file():
        raise UserError(f"--reference: {args.reference}: no such file")
    try:
        return load_candidate(args.reference)
    except CandidateError as e:
        raise UserError(f"--reference: {e}") from None


def _proxies(candidate, seed: int, batch: int = 64) -> dict:
    """Zero-cost proxies at init on one seeded batch of digits at the candidate's size (what a
    campaign trial records for the same candidate, seed and data)."""
    import torch

    from nas.campaign.analysis import init_proxies, measure_settings
    from nas.models.build import build_model
    from nas.train.data import DataConfig, load_data

    cfg = DataConfig.from_dict(
        {"dataset": "digits", "image_size": candidate.image_size, "seed": seed}, source="data"
    )
    data = load_data(cfg).with_channels(candidate.in_chans)
    torch.manual_seed(seed)
    settings = measure_settings({"proxy_batch": batch})
    return init_proxies(
        build_model(candidate), data, settings, seed=seed, num_classes=candidate.num_classes
    )


def _latency_text(row: dict) -> str:
    """``nas measure``'s latency: measured (p90, cv), relative, predicted (and its flags)."""
    lat = "-"
    if row["latency_ms_p50"] is not None:
        lat = (
            f"{row['latency_ms_p50']:.3f} ms (p90 {row['latency_ms_p90']:.3f}, "
            f"cv {row['latency_cv']:.1%})"
        )
    if row["latency_rel"] is not None:
        lat += (
            f"  rel {row['latency_rel']:.3f} [{row['latency_rel_ci_low']:.3f}, "
            f"{row['latency_rel_ci_high']:.3f}] x reference {row['latency_ref_id']} "
            f"({row['latency_ref_ms_p50']:.3f} ms)"
        )
    if "latency_pred_ms" in row:
        pred, flags = row["latency_pred_ms"], row["latency_pred_flags"]
        lat += "  predicted " + ("-" if pred is None else f"{pred:.3f} ms")
        lat += f" ({flags})" if flags else ""
    return lat


def _row_text(row: dict) -> str:
    """One line of ``nas measure`` (without ``--json``)."""
    from nas.measure.proxies import PROXIES

    if row["status"] != "ok":
        return f"{row['candidate_id']}  {row['status']}: {row['error']}"
    return (
        f"{row['candidate_id']}  params {row['params']:,} (deploy {row['params_deploy']:,})  "
        f"MACs {row['macs'] / 1e6:,.2f} M (deploy {row['macs_deploy'] / 1e6:,.2f} M)  "
        f"latency {_latency_text(row)}  "
        f"saved for backward {row['train_saved_bytes'] / 2**20:.2f} MiB{_extras(row, PROXIES)}"
    )


def _load_predictor(path: str | None):
    from nas.measure.latency_model import LatencyModel

    return LatencyModel.load(path) if path else None


def cmd_measure(args) -> int:
    from nas.device import resolve_device
    from nas.measure import ROW_KEYS, LatencyProtocol, measure_candidate

    device = str(resolve_device(args.device))
    if args.weights and not args.feature_diversity:
        raise UserError(
            "--weights: only --feature-diversity reads weights; add it or drop --weights"
        )
    rows = []
    targets, base = _targets(args.target, args.n, args.seed, with_base=True)
    reference = _reference(args, base)
    predictor = _load_predictor(args.predict_latency)
    for c in targets:
        size = args.image_size or c.image_size
        if size != c.image_size:
            from nas.space.candidate import Candidate

            c = Candidate.from_params({"image_size": size}, base=c)
        proto = LatencyProtocol(
            device=device,
            batch=args.batch,
            image_size=size,
            threads=args.threads,
            dtype=args.dtype,
            channels_last=not args.nchw,
        )
        row = measure_candidate(
            c,
            proto=proto,
            latency=not args.no_latency,
            throughput_batch=args.throughput_batch,
            reference=reference,
        )
        if predictor is not None:
            from nas.measure.latency_fit import predicted_columns

            row.update(predicted_columns(predictor, c, proto))
        if args.proxies:
            row.update(_proxies(c, args.seed))
        if args.feature_diversity:
            row.update(_feature_diversity(c, args))
        rows.append(row)
        print(json.dumps(row) if args.json else _row_text(row), flush=True)
    if not args.json:
        print(
            f"# {device}, torch {rows[0]['torch_version']}, {args.threads} thread(s), batch {args.batch}; "
            f"uncounted ops: {', '.join(rows[0]['uncounted_ops'] or []) or 'none'}",
            file=sys.stderr,
        )
    assert all(k in rows[0] for k in ROW_KEYS)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def _extras(row: dict, proxies) -> str:
    """The proxies' and the feature diversity's values of a measured row, as one line's tail."""
    out = "".join(f"  {p} {row[p]:.4g}" for p in proxies if p in row)
    return out + "".join(
        f"  {k} {v:.4f}" for k, v in row.items() if k.startswith("featdiv_s") and k[9:].isdigit()
    )


def _feature_diversity(candidate, args) -> dict:
    """``featdiv_s<i>`` of the candidate (at init, or with ``--weights``) on ``--images``
    validation images of ``--dataset`` at the candidate's size."""
    import torch

    from nas.measure.featdiv import stage_diversity
    from nas.models.build import build_model
    from nas.models.weights import load_weights

    fitted, data = fit_to_data(
        candidate,
        dataset=args.dataset,
        image_size=candidate.image_size,
        seed=args.seed,
        path=args.data_path,
    )
    torch.manual_seed(args.seed)
    model = build_model(fitted)
    if args.weights:
        load_weights(model, args.weights)
    images, _ = next(
        data.batches("val", min(args.images, data.num_val), generator=None, device="cpu")
    )
    return {**stage_diversity(model, images), "featdiv_images": len(images)}
