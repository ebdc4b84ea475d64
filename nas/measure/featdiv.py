"""Feature diversity: ConvNeXt V2's feature-collapse analysis (Woo et al., CVPR 2023, sec. 3.2
and Fig. 4), per stage of a network.

For a batch of images and one stage: each channel's activation map, flattened over the batch's
images and spatial positions (a vector of B x H x W values), and the cosine distance
``1 - cos(x_i, x_j)`` between every pair of distinct channels, averaged over the C (C - 1) / 2
pairs. 0: every channel says the same thing (collapsed); 1: orthogonal channels on average.

Constant channels. A channel whose map is constant over the batch's positions (an all-zero, dead
channel included) carries nothing about the image: its distance to every other channel counts
as 0 (the cosine of an all-zero vector is undefined, and a constant channel is exactly what
collapse produces). A stage whose channels are all constant gives 0, never NaN. "Constant" means
a spread (max - min) of at most ``CONSTANT_RTOL`` times the stage's largest absolute activation
(or an all-zero stage).

NOTE departures from the paper: it averages ``(1 - cos) / 2`` over all C^2 ordered pairs (the
diagonal's zeros included) per image and then over images; this module uses the distinct pairs
only, without the halving (range [0, 2]; the paper's value is ``(C - 1) / (2 C)`` times this one
for a single image), and one vector per channel over the whole batch, as the issue asks. The maps
are the stages' outputs (a RevCol network: its last column's levels), in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CONSTANT_RTOL", "feature_diversity", "stage_diversity", "stage_features"]

CONSTANT_RTOL = 1e-6


def feature_diversity(features: torch.Tensor) -> float:
    """Mean pairwise cosine distance between the channels of ``features`` (B, C, H, W), each
    channel flattened over batch and positions; constant channels at distance 0 (module notes).
    A single channel has no pair: 0."""
    if features.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(features.shape)}")
    x = features.detach().double().transpose(0, 1).reshape(features.shape[1], -1)  # (C, B*H*W)
    c = x.shape[0]
    if c < 2:
        return 0.0
    scale = x.abs().max()
    spread = x.max(dim=1).values - x.min(dim=1).values
    live = spread > CONSTANT_RTOL * scale if scale > 0 else torch.zeros(c, dtype=torch.bool)
    unit = x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    distance = 1.0 - unit @ unit.T
    distance = distance * (live[:, None] & live[None, :])  # a constant channel: 0 to all
    upper = torch.triu_indices(c, c, offset=1)
    return float(distance[upper[0], upper[1]].mean())


def stage_features(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """The output of every stage of ``model`` (a ``PlainNet`` or a ``RevColNet``: its last
    column's levels) on ``images``, in eval mode without gradients."""
    from nas.models.plain import PlainNet
    from nas.models.revcol import RevColNet

    outputs: list[torch.Tensor] = []
    if isinstance(model, PlainNet):
        hooks = [s.register_forward_hook(lambda m, i, o: outputs.append(o)) for s in model.stages]
    elif isinstance(model, RevColNet):
        hooks = [model.columns[-1].register_forward_hook(lambda m, i, o: outputs.extend(o))]
    else:
        raise TypeError(
            f"stage features need a PlainNet or a RevColNet, got {type(model).__name__}"
        )
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model.forward_features(images)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return outputs


def stage_diversity(model: nn.Module, images: torch.Tensor) -> dict[str, float]:
    """``{"featdiv_s0": ..., ...}``: :func:`feature_diversity` of each stage's output."""
    return {
        f"featdiv_s{i}": feature_diversity(f) for i, f in enumerate(stage_features(model, images))
    }
