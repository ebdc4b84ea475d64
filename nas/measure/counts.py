"""Parameters and MACs of a built model: fvcore's count (one multiply-add = one "flop"), with a
handle for ``scaled_dot_product_attention`` that fvcore skips (MACs = b*h*n_q*n_k*(d + d_v));
what stays uncounted is returned (softmax, GELU, elementwise ops, GRN's norm, ...). An independent
cross-check counts with ``torch.utils.flop_counter.FlopCounterMode``."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["count_macs", "count_params", "flop_counter_macs", "flop_counter_mapping"]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------- MACs (fvcore)
def _sdpa_jit_handle(inputs, outputs) -> int:
    """fvcore handle for aten::scaled_dot_product_attention: QK^T and AV multiply-adds."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = math.prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def count_macs(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int]]:
    """fvcore MACs of one eval forward on ``x``, and the ops fvcore left uncounted."""
    from fvcore.nn import FlopCountAnalysis

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(model, (x,))
            analysis.set_op_handle("aten::scaled_dot_product_attention", _sdpa_jit_handle)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(
                False
            ).tracer_warnings("none")
            total = int(analysis.total())
            uncounted = dict(sorted(analysis.unsupported_ops().items()))
    finally:
        model.train(was_training)
    return total, {k.removeprefix("aten::"): int(v) for k, v in uncounted.items()}


# ---------------------------------------------------------------------- cross-check counter
def flop_counter_mapping() -> dict:
    """``torch.utils.flop_counter.FlopCounterMode`` formulas (2 flops per MAC) for the ops fvcore
    counts and FlopCounterMode does not (norms, pooling, upsampling, SDPA's CPU kernel), so that
    FlopCounterMode / 2 reproduces fvcore: an independent check of ``count_macs``."""
    aten = torch.ops.aten

    def layer_norm(x, normalized_shape, weight=None, *args, out_shape=None, **kw) -> int:
        return 2 * math.prod(x) * (5 if weight is not None else 4)

    def batch_norm_eval(x, weight=None, *args, out_shape=None, **kw) -> int:
        return 2 * math.prod(x) * (2 if weight is not None else 1)

    def nearest(x, *args, out_shape=None, **kw) -> int:
        return 2 * math.prod(out_shape)

    def bilinear(x, *args, out_shape=None, **kw) -> int:
        return 2 * 4 * math.prod(out_shape)

    def sdpa(q, k, v, *args, out_shape=None, **kw) -> int:
        return 2 * math.prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])

    return {
        aten.native_layer_norm: layer_norm,
        aten._native_batch_norm_legit_no_training: batch_norm_eval,
        aten.upsample_nearest2d: nearest,
        aten.upsample_bilinear2d: bilinear,
        aten._scaled_dot_product_flash_attention_for_cpu: sdpa,
    }


def flop_counter_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs by FlopCounterMode (flops / 2) with ``flop_counter_mapping``; eval forward."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with (
            torch.no_grad(),
            FlopCounterMode(display=False, custom_mapping=flop_counter_mapping()) as counter,
        ):
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
