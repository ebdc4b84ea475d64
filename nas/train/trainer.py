"""The short-budget trainer: AdamW, warm-up + cosine, label smoothing, gradient clipping.

nanoGPT-style: a config dataclass, a pure LR schedule, no weight decay on vector parameters, a
loop that fits one screen. RevCol models with intermediate supervision train on the paper's
compound loss (``nas.models.revcol.revcol_loss``). On CUDA the step runs under bf16 autocast with
channels-last tensors; on CPU in float32, seeded, bit-reproducible for the same seed and machine.

A divergent run (non-finite loss) ends with ``status="diverged"`` and a reason; it never raises.
``report(dict)`` is called after every epoch; an optional checkpoint file makes runs resumable.
Never imports ray: the campaign wraps ``train`` in whatever scheduler it uses.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.device import resolve_device
from nas.errors import UserError
from nas.settings import TRAIN_RULES, parse_fields
from nas.train.data import DataSplits, augment

__all__ = [
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "lr_at",
    "make_optimizer",
    "make_step",
    "param_groups",
    "train",
]

log = logging.getLogger(__name__)

REPORT_KEYS = ("epoch", "train_loss", "val_loss", "val_acc", "epoch_s", "images_per_s", "lr")


@dataclass(frozen=True)
class TrainConfig:
    """Short-budget training hyper-parameters. ``amp`` (bf16 autocast) and ``channels_last``
    apply on CUDA only; ``aux_weight`` scales RevCol's auxiliary heads and decoders (1 = paper)."""

    epochs: int = 6
    batch_size: int = 128
    lr: float = 2e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    amp: str | bool = "auto"
    channels_last: str | bool = "auto"
    aux_weight: float = 1.0

    def __post_init__(self) -> None:
        values = parse_fields(dataclasses.asdict(self), TRAIN_RULES, source="train")
        _check_min_lr(values["lr"], values["min_lr"], source="train")
        for key, value in values.items():
            object.__setattr__(self, key, value)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "train") -> TrainConfig:
        values = parse_fields(d, TRAIN_RULES, source=source)
        _check_min_lr(values.get("lr", cls.lr), values.get("min_lr", cls.min_lr), source=source)
        return cls(**values)


def _check_min_lr(lr: float, min_lr: float, *, source: str) -> None:
    if min_lr > lr:
        raise UserError(f"{source}.min_lr: expected at most lr ({lr}), got {min_lr}")


@dataclass
class TrainResult:
    status: str  # "ok" | "diverged"
    reason: str
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    model: nn.Module | None = None
    epochs_done: int = 0


def lr_at(step: int, *, total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> float:
    """Linear warm-up from lr/warmup_steps to lr over ``warmup_steps``, then cosine to ``min_lr``
    at the last step (``total_steps - 1``) and after."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = total_steps - 1 - warmup_steps
    progress = min(1.0, (step - warmup_steps) / decay_steps) if decay_steps > 0 else 1.0
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on matrices and conv kernels; none on vectors.

    A vector is any parameter with ``ndim <= 1`` (norm weights, biases, gates) *or* whose numel
    equals its largest dimension, i.e. a vector in disguise such as GRN's gamma/beta
    (1, 1, 1, C), RevCol's alpha_theta (1, C, 1, 1) or a depthwise 1x1 kernel (C, 1, 1, 1). A
    module's ``decayed_parameters()`` are decayed whatever their shape (RevCol's official alpha,
    which the official optimizer decays).
    """
    decay, no_decay = [], []
    forced = {
        id(p) for m in model.modules() for p in getattr(m, "decayed_parameters", list)()
    }  # RevCol's official alpha
    for p in model.parameters():
        if p.requires_grad:
            vector = (p.ndim <= 1 or p.numel() == max(p.shape)) and id(p) not in forced
            (no_decay if vector else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    device = next(model.parameters()).device
    fused = True if device.type == "cuda" else None
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, fused=fused)


def use_amp(cfg: TrainConfig, device: torch.device) -> bool:
    if device.type != "cuda" or cfg.amp is False:
        return False
    return cfg.amp is True or torch.cuda.is_bf16_supported()


def use_channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    return device.type == "cuda" and cfg.channels_last is not False


def compute_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig):
    """Label-smoothed CE; RevCol with intermediate supervision: CE(final) + aux_weight * the
    rest of the paper's compound loss (aux heads' CE and reconstruction BCE)."""
    if not getattr(model, "aux_at", None):
        return F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
    from nas.models.revcol import revcol_loss

    logits, recons = model.forward_aux(x)
    main = F.cross_entropy(logits[-1], y, label_smoothing=cfg.label_smoothing)
    total = revcol_loss(logits, recons, y, x, label_smoothing=cfg.label_smoothing)
    return main + cfg.aux_weight * (total - main)


def make_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    *,
    total_steps: int,
    warmup_steps: int,
) -> Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]:
    """One optimisation step ``step(x, y, global_step) -> detached loss``; no host sync."""
    device = next(model.parameters()).device
    amp, channels_last = use_amp(cfg, device), use_channels_last(cfg, device)
    params = [p for g in optimizer.param_groups for p in g["params"]]

    def step(x: torch.Tensor, y: torch.Tensor, i: int) -> torch.Tensor:
        lr = lr_at(
            i, total_steps=total_steps, warmup_steps=warmup_steps, lr=cfg.lr, min_lr=cfg.min_lr
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = compute_loss(model, x, y, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        return loss.detach()

    return step


@torch.inference_mode()
def evaluate(model: nn.Module, data: DataSplits, cfg: TrainConfig, *, batch_size: int):
    """(mean CE without smoothing, accuracy in [0, 1]) on the validation split, eval mode."""
    device = next(model.parameters()).device
    amp, channels_last = use_amp(cfg, device), use_channels_last(cfg, device)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for x, y in data.batches("val", batch_size, generator=None, device=device):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    return loss_sum.item() / data.num_val, correct.item() / data.num_val


def train(
    model: nn.Module,
    data: DataSplits,
    cfg: TrainConfig,
    *,
    report: Callable[[dict], None] | None = None,
    checkpoint: str | Path | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data``; returns status, final metrics and per-epoch history.

    With ``checkpoint``, the state is saved after every epoch and a run restarts from the saved
    epoch if the file exists (the schedule follows the *current* ``cfg.epochs``).
    """
    device = resolve_device(cfg.device, key="train.device")
    torch.manual_seed(cfg.seed)
    model.to(device)
    if use_channels_last(cfg, device):
        model.to(memory_format=torch.channels_last)
    data = data.to(device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    batch = min(cfg.batch_size, data.num_train)
    steps_per_epoch = data.num_train // batch
    total = cfg.epochs * steps_per_epoch
    warmup = min(total, round(cfg.warmup_epochs * steps_per_epoch))
    optimizer = make_optimizer(model, cfg)
    step = make_step(model, optimizer, cfg, total_steps=total, warmup_steps=warmup)
    history, start = load_checkpoint(checkpoint, model, optimizer, gen) if checkpoint else ([], 0)
    model.train()
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        loss_sum, reason = _train_epoch(step, data, gen, epoch=epoch, batch=batch)
        if reason:
            lr = optimizer.param_groups[0]["lr"]
            return _stop(model, history, "diverged", f"{reason} (lr {lr:.3g})")
        train_s = time.perf_counter() - t0
        val_loss, val_acc = evaluate(model, data, cfg, batch_size=2 * batch)
        if not math.isfinite(val_loss):
            reason = f"validation loss became {_kind(val_loss)} at epoch {epoch + 1}"
            return _stop(model, history, "diverged", reason)
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / steps_per_epoch,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "epoch_s": time.perf_counter() - t0,
            "images_per_s": steps_per_epoch * batch / train_s,
            "lr": optimizer.param_groups[0]["lr"],
        }
        history.append(row)
        log.info("epoch %d/%d %s", epoch + 1, cfg.epochs, _fmt(row))
        if checkpoint:
            save_checkpoint(checkpoint, model, optimizer, gen, history)
        if report is not None:
            report(dict(row))
    return _stop(model, history, "ok", "")


def _train_epoch(step, data: DataSplits, gen, *, epoch: int, batch: int) -> tuple[float, str]:
    """One pass over the shuffled, augmented train split: (summed loss, divergence reason or '').

    The loss is summed on the device; finiteness is checked every step on CPU (free) and every
    32 steps plus the last on an accelerator (each check is a host sync)."""
    device = gen.device
    check_every = 1 if device.type == "cpu" else 32
    steps = data.num_train // batch
    loss_sum = torch.zeros((), device=device)
    for i, (x, y) in enumerate(data.batches("train", batch, generator=gen, device=device)):
        x = augment(x, gen, pad=data.crop_pad, flip=data.flip)
        loss_sum += step(x, y, epoch * steps + i)
        if (i + 1) % check_every == 0 or i + 1 == steps:
            if not torch.isfinite(loss_sum):
                at = "at" if check_every == 1 else "by"
                return (
                    math.nan,
                    f"loss became {_kind(loss_sum)} {at} epoch {epoch + 1} step {i + 1}",
                )
    return loss_sum.item(), ""


def _kind(value) -> str:
    return "nan" if math.isnan(float(value)) else "inf"


def _fmt(row: dict) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")


def _stop(model: nn.Module, history: list[dict], status: str, reason: str) -> TrainResult:
    if reason:
        log.warning("training stopped: %s", reason)
    metrics = dict(history[-1]) if history else {}
    if history:
        metrics["best_val_acc"] = max(h["val_acc"] for h in history)
    return TrainResult(status, reason, metrics, history, model, len(history))


def save_checkpoint(path, model, optimizer, gen: torch.Generator, history: list[dict]) -> None:
    """Atomic: write a temporary file next to the target, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": len(history),
        "history": history,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "generator": gen.get_state(),
        },
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, model, optimizer, gen: torch.Generator) -> tuple[list[dict], int]:
    path = Path(path)
    if not path.is_file():
        return [], 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, KeyError, ValueError, TypeError, EOFError, pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"checkpoint: {path} is not a checkpoint of this model and trainer ({first})"
        ) from None
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    gen.set_state(state["rng"]["generator"])
    log.info("resumed from %s after epoch %d", path, state["epoch"])
    return list(state["history"]), int(state["epoch"])
