"""``nas train`` and ``nas pretrain``: one candidate, one data set, one line per epoch."""

from __future__ import annotations

import time
from pathlib import Path

from nas.cli.commands import fit_target
from nas.cli.flags import EPILOG, output_file, positive_int
from nas.errors import UserError

WEIGHTS_FORMAT = "nas.fcmae-encoder.v1"


def _data_flags(t, *, epochs: int) -> None:
    """The flags ``nas train`` and ``nas pretrain`` share: data, budget, seed, device."""
    t.add_argument("target", help="candidate (preset) YAML")
    t.add_argument("--epochs", type=positive_int, default=epochs, help=f"epochs (default {epochs})")
    t.add_argument(
        "--dataset",
        default="digits",
        help="digits | cifar10 | imagefolder | synthetic (default digits)",
    )
    t.add_argument(
        "--data-path", default=None, help="data folder for cifar10/imagefolder (or NAS_DATA)"
    )
    t.add_argument("--image-size", type=positive_int, default=32, help="input size (default 32)")
    t.add_argument("--batch-size", type=positive_int, default=None, help="batch size (default 128)")
    t.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    t.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    t.add_argument(
        "--checkpoint", default=None, help="save after every epoch and resume from this file"
    )


def add_train(sub) -> None:
    """``nas train``."""
    t = sub.add_parser(
        "train",
        help="train one candidate on a short budget",
        epilog=EPILOG,
        description="Train a candidate (preset YAML) and print one line per epoch, ending with its status.",
    )
    _data_flags(t, epochs=6)
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3)")
    t.add_argument(
        "--init", default=None, help="start from these encoder weights (written by nas pretrain)"
    )
    t.set_defaults(func=cmd_train)


def add_pretrain(sub) -> None:
    """``nas pretrain``."""
    t = sub.add_parser(
        "pretrain",
        help="FCMAE masked pre-training of one candidate (ConvNeXt V2)",
        epilog=EPILOG,
        description="Pre-train a candidate's network as the encoder of an FCMAE on the training "
        "split without labels; print pretrain_loss per epoch and write the encoder's weights "
        "(nas train --init PATH fine-tunes from them).",
    )
    _data_flags(t, epochs=10)
    t.add_argument(
        "--out", default=None, help="encoder weights file (default <candidate>.fcmae.pt)"
    )
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1.5e-3)")
    t.add_argument("--mask-ratio", type=float, default=None, help="masked share of patches (0.6)")
    t.add_argument("--patch", type=positive_int, default=None, help="mask patch in px (the stride)")
    t.add_argument("--decoder-dim", type=positive_int, default=None, help="decoder width (512)")
    t.add_argument("--decoder-depth", type=positive_int, default=None, help="decoder blocks (1)")
    t.add_argument(
        "--norm-pix-loss", action="store_true", help="per-patch normalised pixel targets"
    )
    t.set_defaults(func=cmd_pretrain)


def _setup(args, overrides: dict):
    """(candidate at the data's classes and size, data splits, TrainConfig) from the shared flags."""
    from nas.train import TrainConfig

    given = {"batch_size": args.batch_size, **overrides}
    cfg = TrainConfig.from_dict(
        {
            "epochs": args.epochs,
            "seed": args.seed,
            "device": args.device,
            **{k: v for k, v in given.items() if v is not None},
        },
        source="flags",
    )
    candidate, data = fit_target(args)
    return candidate, data, cfg


def _announce(args, candidate, data, epochs: int, device: str, what: str) -> None:
    print(
        f"{args.target}: candidate {candidate.id} on {data.name} ({data.num_train} train / "
        f"{data.num_val} val, {data.num_classes} classes, {args.image_size}x{args.image_size}), "
        f"{what} {epochs} epochs on {device}",
        flush=True,
    )


def cmd_train(args) -> int:
    import torch

    from nas.models.build import build_model
    from nas.train import train

    candidate, data, cfg = _setup(args, {"lr": args.lr})
    _announce(args, candidate, data, cfg.epochs, cfg.device, "training")
    torch.manual_seed(cfg.seed)
    model = build_model(candidate)
    if args.init:
        load_encoder(model, args.init)
        print(f"initialised from {args.init} (every encoder tensor loaded)", flush=True)
    t0 = time.perf_counter()

    def progress(m: dict) -> None:
        print(
            f"epoch {m['epoch']}/{cfg.epochs}  train_loss={m['train_loss']:.4f}  val_loss={m['val_loss']:.4f}  "
            f"val_acc={m['val_acc']:.4f}  epoch_s={m['epoch_s']:.1f}  images_per_s={m['images_per_s']:.0f}",
            flush=True,
        )

    result = train(model, data, cfg, report=progress, checkpoint=args.checkpoint)
    best = max((h["val_acc"] for h in result.history), default=float("nan"))
    print(
        f"status={result.status}{' (' + result.reason + ')' if result.reason else ''}  "
        f"val_acc={result.metrics.get('val_acc', float('nan')):.4f}  best_val_acc={best:.4f}  "
        f"total_s={time.perf_counter() - t0:.1f}"
    )
    return 0 if result.status == "ok" else 1


def cmd_pretrain(args) -> int:
    import torch

    from nas.pretrain import PretrainConfig, build_fcmae, check_fcmae, pretrain

    candidate, data, cfg = _setup(args, {})
    flags = {
        "method": "fcmae",
        "epochs": args.epochs,
        "lr": args.lr,
        "mask_ratio": args.mask_ratio,
        "patch": args.patch,
        "decoder_dim": args.decoder_dim,
        "decoder_depth": args.decoder_depth,
        "norm_pix_loss": args.norm_pix_loss,
    }
    pre = PretrainConfig.from_dict(
        {k: v for k, v in flags.items() if v is not None}, source="flags"
    )
    check_fcmae(candidate, patch=pre.patch, mask_ratio=pre.mask_ratio, source="flags")
    out = output_file(args.out or Path(args.target).with_suffix(".fcmae.pt").name)
    _announce(args, candidate, data, pre.epochs, cfg.device, "FCMAE pre-training")
    torch.manual_seed(cfg.seed)
    model = build_fcmae(candidate, pre)
    print(f"mask: {model.side}x{model.side} patches of {model.patch} px, ratio {pre.mask_ratio}")

    def progress(m: dict) -> None:
        if m["pretrain_epoch"] == 0:
            print(f"before pre-training: pretrain_val_loss={m['pretrain_val_loss']:.4f}")
            return
        print(
            f"epoch {m['pretrain_epoch']}/{pre.epochs}  pretrain_loss={m['pretrain_loss']:.4f}  "
            f"pretrain_val_loss={m['pretrain_val_loss']:.4f}  epoch_s={m['pretrain_epoch_s']:.1f}  "
            f"images_per_s={m['pretrain_images_per_s']:.0f}",
            flush=True,
        )

    result = pretrain(model, data, pre, cfg, report=progress, checkpoint=args.checkpoint)
    if result.status != "ok":
        print(f"status={result.status} ({result.reason})")
        return 1
    save_encoder(out, model, pre)
    print(f"status=ok  pretrain_loss={result.loss:.4f}  encoder weights: {out}")
    return 0


def save_encoder(path: Path, fcmae, pre) -> None:
    """The encoder's weights with what made them (candidate, settings), written atomically."""
    import os

    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": WEIGHTS_FORMAT,
        "candidate": fcmae.candidate.to_dict(),
        "pretrain": pre.columns(),
        "encoder": fcmae.encoder_state_dict(),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_encoder(model, path: str) -> None:
    """Load ``nas pretrain``'s encoder weights into ``model`` strictly; one clear line if the
    file is not such weights or belongs to another structure."""
    from nas.models.weights import load_state_strictly, read_state

    state = read_state(path, label=f"--init {path}")
    if state.get("format") != WEIGHTS_FORMAT:
        raise UserError(
            f"--init {path}: expected encoder weights written by nas pretrain (format "
            f"{WEIGHTS_FORMAT!r}), got a mapping with keys {sorted(state)[:5]}"
        )
    load_state_strictly(model, state["encoder"], where=f"--init {path}")
