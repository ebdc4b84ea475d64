"""Zero-cost proxies at initialisation, each as its paper defines it (and as the zero-cost NAS
benchmark of Abdelfattah et al., ICLR 2021, computes it):

* ``grad_norm``: the sum over weight tensors of the L2 norm of the cross-entropy gradient.
* ``snip`` (Lee et al., ICLR 2019): sum over weights of |dL/dw * w|.
* ``synflow`` (Tanaka et al., NeurIPS 2020): with every parameter and buffer replaced by its
  absolute value, in float64 and eval mode, R = the sum of the output for an all-ones input;
  the score is the sum over conv/linear weights of dR/dw * w. Data-independent by construction.
* ``naswot`` (Mellor et al., ICML 2021): the binary code of each image is the sign pattern of the
  pre-activations of every nonlinearity (the inputs of each GELU/ReLU: the blocks use GELU, so
  "active" means > 0); K[i, j] = N_units - Hamming(c_i, c_j); the score is log |det K|.

A proxy that fails on a candidate is NaN with its reason in ``proxy_errors``; a trial never
fails because of a proxy. The model's weights are left as they were.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas.vocab import PROXIES

__all__ = ["PROXIES", "zero_cost_proxies"]

_WEIGHTED = (nn.Conv2d, nn.Linear)


def zero_cost_proxies(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    which: Sequence[str] = PROXIES,
) -> dict:
    """``{proxy: value, ..., "proxy_errors": {proxy: reason}}`` on one batch; ``model`` is not
    changed (each proxy works on a copy)."""
    out: dict = {}
    errors: dict[str, str] = {}
    for name in which:
        try:
            out[name] = float(_PROXY[name](copy.deepcopy(model), images, labels))
        except Exception as e:  # noqa: BLE001 - a proxy that cannot run is NaN with its reason
            out[name] = math.nan
            errors[name] = f"{type(e).__name__}: {e}"[:300]
    out["proxy_errors"] = errors
    return out


def _weights(model: nn.Module):
    return [m.weight for m in model.modules() if isinstance(m, _WEIGHTED)]


def _ce_gradients(model: nn.Module, images, labels) -> list[torch.Tensor]:
    model.train()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()
    return [w for w in _weights(model) if w.grad is not None]


def _grad_norm(model, images, labels) -> float:
    return sum(w.grad.norm().item() for w in _ce_gradients(model, images, labels))


def _snip(model, images, labels) -> float:
    return sum((w.grad * w).abs().sum().item() for w in _ce_gradients(model, images, labels))


def _synflow(model, images, labels) -> float:
    model = model.double().eval()
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                t.abs_()
    model.zero_grad(set_to_none=True)
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64)
    model(ones).sum().backward()
    return sum((w.grad * w).sum().item() for w in _weights(model) if w.grad is not None)


def _naswot(model, images, labels) -> float:
    codes: list[torch.Tensor] = []

    def hook(module, args):
        codes.append((args[0] > 0).flatten(1))

    handles = [
        m.register_forward_pre_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.GELU, nn.ReLU))
    ]
    try:
        model.eval()
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
    if not codes:
        raise ValueError("no GELU or ReLU in the network: no activation pattern")
    c = torch.cat(codes, dim=1).double()
    k = c @ c.t() + (1 - c) @ (1 - c).t()  # units where both agree = N - Hamming
    sign, logdet = torch.linalg.slogdet(k)
    if sign == 0:
        return -math.inf  # two images with the same pattern: singular
    return logdet.item()


_PROXY = {"synflow": _synflow, "grad_norm": _grad_norm, "snip": _snip, "naswot": _naswot}
