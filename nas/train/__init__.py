"""Training: ``data`` loads the data sets (digits, CIFAR-10, an image folder, synthetic) into
ready-to-use splits; ``trainer`` is the short-budget trainer (AdamW, warm-up + cosine, label
smoothing, bf16 autocast on GPU, checkpoint and exact resume, divergence detection)."""

from nas.train.trainer import (
    REPORT_KEYS,
    TrainConfig,
    TrainResult,
    evaluate,
    lr_at,
    make_optimizer,
    make_step,
    param_groups,
    train,
)

__all__ = [
    "REPORT_KEYS",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "lr_at",
    "make_optimizer",
    "make_step",
    "param_groups",
    "train",
]
