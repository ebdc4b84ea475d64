"""The pre-training loop: FCMAE on the training split without labels, AdamW (betas 0.9, 0.95
as MAE) with linear warm-up and cosine decay, the same augmentation, batching, checkpoint format
and exact resume as the supervised trainer. Each epoch also measures the masked reconstruction
loss on the validation split under one fixed mask per image (seeded), so epochs compare."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.device import resolve_device
from nas.settings import PRETRAIN_RULES, parse_fields
from nas.space.candidate import Candidate
from nas.train.data import DataSplits, augment
from nas.train.trainer import (
    TrainConfig,
    load_checkpoint,
    lr_at,
    param_groups,
    save_checkpoint,
    use_amp,
)

__all__ = ["PretrainConfig", "PretrainResult", "build_fcmae", "pretrain"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainConfig:
    """``pretrain:`` settings (``PRETRAIN_RULES``); ``method: none`` skips pre-training.

    Defaults for short budgets on small data, not the paper's 1600-epoch ImageNet recipe (blr
    1.5e-4 x batch/256 = 2.4e-3 at batch 4096, weight decay 0.05, 40 warm-up epochs)."""

    method: str = "none"
    epochs: int = 10
    mask_ratio: float = 0.6
    patch: int | None = None
    decoder_dim: int = 512
    decoder_depth: int = 1
    norm_pix_loss: bool = False
    lr: float = 1.5e-3
    weight_decay: float = 0.05

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "pretrain") -> PretrainConfig:
        return cls(**parse_fields(d, PRETRAIN_RULES, source=source))

    def columns(self) -> dict[str, Any]:
        """The row's ``pretrain.*`` columns (only ``pretrain.method`` when it is ``none``)."""
        if self.method == "none":
            return {"pretrain.method": "none"}
        return {f"pretrain.{k}": v for k, v in asdict(self).items()}


@dataclass
class PretrainResult:
    status: str  # ok | diverged
    reason: str
    history: list[dict] = field(default_factory=list)
    start_epoch: int = 0  # the epoch this run resumed after (0: from scratch)
    initial_val_loss: float = math.nan  # before the first epoch (kept across a resume)

    @property
    def loss(self) -> float:
        return self.history[-1]["pretrain_loss"] if self.history else math.nan


def build_fcmae(candidate: Candidate, cfg: PretrainConfig):
    from nas.pretrain.fcmae import FCMAE

    return FCMAE(
        candidate,
        mask_ratio=cfg.mask_ratio,
        patch=cfg.patch,
        decoder_dim=cfg.decoder_dim,
        decoder_depth=cfg.decoder_depth,
        norm_pix_loss=cfg.norm_pix_loss,
    )


def pretrain(
    model: nn.Module,
    data: DataSplits,
    cfg: PretrainConfig,
    train_cfg: TrainConfig,
    *,
    report: Callable[[dict], None] | None = None,
    checkpoint: str | Path | None = None,
) -> PretrainResult:
    """Pre-train an ``FCMAE`` in place for ``cfg.epochs``; ``train_cfg`` gives the batch size,
    device, seed and AMP. With ``checkpoint`` the state is saved every epoch and a run restarts
    from the saved epoch. ``report`` gets each epoch's row, and first (from scratch only) the
    validation loss before any step as ``{"pretrain_epoch": 0, "pretrain_val_loss": ...}``."""
    device = resolve_device(train_cfg.device, key="train.device")
    torch.manual_seed(train_cfg.seed)
    model.to(device).train()
    data = data.to(device)
    gen = torch.Generator(device=device).manual_seed(train_cfg.seed)
    batch = min(train_cfg.batch_size, data.num_train)
    steps = data.num_train // batch
    total = cfg.epochs * steps
    warmup = min(total, max(1, total // 10))
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95)
    )
    amp = use_amp(train_cfg, device)
    history, start = load_checkpoint(checkpoint, model, optimizer, gen) if checkpoint else ([], 0)
    initial = _initial_loss(model, data, history, batch, train_cfg.seed, report)
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        mean = _epoch(model, data, optimizer, gen, cfg, amp=amp, batch=batch, first=epoch * steps, total=total, warmup=warmup)  # fmt: skip
        if not math.isfinite(mean):
            reason = f"pre-training loss became {'nan' if math.isnan(mean) else 'inf'} at epoch {epoch + 1}"  # fmt: skip
            log.warning("pre-training stopped: %s", reason)
            return PretrainResult("diverged", reason, history, start, initial)
        seconds = time.perf_counter() - t0
        row = {
            "pretrain_epoch": epoch + 1,
            "pretrain_loss": mean,
            "pretrain_val_loss": validation_loss(model, data, batch=2 * batch, seed=train_cfg.seed),
            "pretrain_epoch_s": seconds,
            "pretrain_images_per_s": steps * batch / seconds,
            "pretrain_val_loss_init": initial,
        }
        history.append(row)
        log.info(
            "pretrain epoch %d/%d %s",
            epoch + 1,
            cfg.epochs,
            " ".join(
                f"{k}={v:.4g}"
                for k, v in row.items()
                if k not in ("pretrain_epoch", "pretrain_val_loss_init")
            ),
        )
        if checkpoint:
            save_checkpoint(checkpoint, model, optimizer, gen, history)
        if report is not None:
            report(dict(row))
    return PretrainResult("ok", "", history, start, initial)


def _initial_loss(model, data, history: list[dict], batch: int, seed: int, report) -> float:
    """The reference every epoch's validation loss compares with: measured before the first step
    (and reported as epoch 0), then carried in every epoch's row, so in the checkpoint and across
    a resume."""
    if history:
        return history[0].get("pretrain_val_loss_init", math.nan)
    initial = validation_loss(model, data, batch=2 * batch, seed=seed)
    log.info("pretrain epoch 0 pretrain_val_loss=%.4g", initial)
    if report is not None:
        report({"pretrain_epoch": 0, "pretrain_val_loss": initial})
    return initial


def _epoch(model, data, optimizer, gen, cfg, *, amp, batch, first, total, warmup) -> float:
    """One pass over the shuffled, augmented train split; the mean masked loss."""
    device = gen.device
    loss_sum, steps = torch.zeros((), device=device), 0
    for x, _ in data.batches("train", batch, generator=gen, device=device):
        x = augment(x, gen, pad=data.crop_pad, flip=data.flip)
        lr = lr_at(first + steps, total_steps=total, warmup_steps=warmup, lr=cfg.lr, min_lr=0.0)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = model(x, model.random_mask(x.shape[0], gen))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        steps += 1
    return loss_sum.item() / max(steps, 1)


@torch.no_grad()
def validation_loss(model: nn.Module, data: DataSplits, *, batch: int, seed: int) -> float:
    """Masked reconstruction loss on the validation split, one fixed mask per image (seeded),
    averaged over images (each has the same number of masked patches); eval mode."""
    was_training = model.training
    model.eval()
    device = model.mask_token.device
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    total = count = 0.0
    for x, _ in data.batches("val", batch, generator=None, device=device):
        loss, _ = model(x, model.random_mask(x.shape[0], gen))
        total, count = total + loss.item() * x.shape[0], count + x.shape[0]
    model.train(was_training)
    return total / max(count, 1)
