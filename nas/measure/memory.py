"""Training-memory accounting that works on any device: bytes saved for backward.

``saved_bytes`` runs one forward (and the loss) under ``torch.autograd.graph.saved_tensors_hooks``
and adds up the storages autograd keeps for backward, each storage once (views and tensors saved
by several ops count once), excluding parameters and buffers. Deterministic and cheap; it is the
activation memory of one training step, without weights, gradients, optimizer state or the
recompute working set of a reversible backward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["saved_bytes"]


def saved_bytes(
    model: nn.Module,
    x: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> int:
    """Bytes saved for backward by one training forward of ``model`` on ``x`` (train mode)."""
    was_training = model.training
    model.train()
    exclude = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in exclude and ptr not in seen:
            seen[ptr] = storage.nbytes()
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
            loss = loss_fn(out) if loss_fn is not None else out.float().square().mean()
        del out, loss
    finally:
        model.train(was_training)
    return sum(seen.values())
