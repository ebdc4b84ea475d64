"""Candidate -> nn.Module, and the deploy (re-parameterized) copy.

``build_model`` is the only place that reads a Candidate to choose a macro; everything below it
takes plain keyword arguments (blocks) or the Candidate's own fields (macros).
"""

from __future__ import annotations

from torch import nn

from nas.models.blocks import reparameterize_modules
from nas.models.parts import init_weights
from nas.models.plain import PlainNet
from nas.models.revcol import RevColNet
from nas.space.candidate import Candidate

__all__ = ["build_model", "reparameterize"]


def build_model(candidate: Candidate) -> nn.Module:
    """Build the training-form network of a Candidate (fresh weights from the global torch RNG)."""
    if not isinstance(candidate, Candidate):
        raise TypeError(f"build_model expects a Candidate, got {type(candidate).__name__}")
    if candidate.macro == "revcol":
        model = RevColNet(candidate)
    else:
        model = PlainNet(candidate)
    init_weights(model, candidate.block)
    model.candidate = candidate
    return model


def reparameterize(model: nn.Module) -> nn.Module:
    """Deploy copy: every re-param branch merged (BN folded); the original is untouched.

    The copy is in eval mode. Calling it on a deploy model returns an equal copy (a no-op).
    """
    deploy = reparameterize_modules(model)
    if hasattr(model, "candidate"):
        deploy.candidate = model.candidate
    return deploy
