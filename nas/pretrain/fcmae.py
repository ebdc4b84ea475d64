"""FCMAE: the fully convolutional masked autoencoder of ConvNeXt V2 (Woo et al., CVPR 2023,
arXiv 2301.00808, section 2; seeds.md 2.3), for any candidate of the vocabulary.

The encoder is the candidate's own network (``nas.build_model``), run densely with the mask kept
exactly, as sparse convolution would: every operation that mixes positions sees zeros at masked
positions. Forward pre-hooks multiply the input of every spatial convolution and pooling (stem,
depthwise and dense convolutions, downsampling, RevCol's fusion convolutions) and of every GRN
(so its norm is over visible positions only) by the visible mask at that resolution; attention
mixers mask the keys and the N x N static affinity its columns (``AffinityMixer.mask_source``).
Per-position operations (1x1 convolutions, Linear, LayerNorm, GELU) need nothing: a masked
position never feeds a visible one through them. BatchNorm's batch statistics include masked
positions (as zeros or constants that do not depend on masked pixels): no pixel leaks, but the
statistics differ from a sparse BatchNorm's.

At a resolution finer than the patch grid a position is visible if its patch is; at a coarser one
(a patch smaller than the network's stride) if any of its patches is, as a strided sparse
convolution creates an output wherever an input is active.

Decoder (the paper's): a 1x1 projection to ``decoder_dim``, a learned mask token at masked
positions of the last stage, ``decoder_depth`` ConvNeXt V2 blocks, a 1x1 prediction of the
``stride x stride x in_chans`` pixels of each last-stage position; MSE on the pixels of masked
patches only, optionally against per-patch normalised pixels (``norm_pix_loss``).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from nas.models.blocks import GRN, AffinityMixer, ConvNeXtBlock
from nas.models.build import build_model
from nas.space.candidate import Candidate
from nas.space.pretrain import check_fcmae, patch_grid

__all__ = ["FCMAE", "MaskState", "check_fcmae", "patch_grid"]

_POOLS = (nn.AvgPool2d, nn.MaxPool2d)


class MaskState:
    """The mask an FCMAE encoder is running under, read by its hooks. ``mask`` is (B, h, w) over
    the patch grid, 1 = masked; ``keep(h, w, dtype)`` the (B, 1, h, w) visible mask at a
    resolution (cached per mask). The mask stays set after a forward, so a reversible RevCol
    backward, which recomputes its levels, sees the same mask."""

    def __init__(self) -> None:
        self.mask: torch.Tensor | None = None
        self._keep: dict[tuple, torch.Tensor] = {}

    def set(self, mask: torch.Tensor | None) -> None:
        self.mask, self._keep = mask, {}

    def keep(self, h: int, w: int, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
        if self.mask is None:
            return None
        key = (h, w, dtype)
        if key not in self._keep:
            visible = (1 - self.mask.to(dtype)).unsqueeze(1)
            gh, gw = self.mask.shape[-2:]
            if h >= gh:
                visible = visible.repeat_interleave(h // gh, 2).repeat_interleave(w // gw, 3)
            else:  # coarser than the grid: visible if any patch under it is
                visible = F.max_pool2d(visible, (gh // h, gw // w))
            self._keep[key] = visible
        return self._keep[key]


def _premask(state: MaskState, module: nn.Module, args: tuple):
    x = args[0]
    channels_last = isinstance(module, GRN) and module.channels_last
    h, w = (x.shape[1], x.shape[2]) if channels_last else (x.shape[-2], x.shape[-1])
    keep = state.keep(h, w, x.dtype)
    if keep is None:
        return None
    return (x * (keep.permute(0, 2, 3, 1) if channels_last else keep), *args[1:])


def _mixes_positions(m: nn.Module) -> bool:
    if isinstance(m, nn.Conv2d):
        return m.kernel_size != (1, 1) or m.stride != (1, 1)
    return isinstance(m, (GRN, *_POOLS))


class FCMAE(nn.Module):
    """FCMAE pre-training model around ``build_model(candidate)``.

    Args:
        candidate: the network to pre-train (any macro and block style of the vocabulary).
        mask_ratio: share of patches masked per image (0.6 in the paper).
        patch: mask patch in pixels; defaults to the network's total stride (32 at 224).
        decoder_dim, decoder_depth: width and number of the decoder's ConvNeXt V2 blocks.
        norm_pix_loss: normalise each patch's target pixels (mean 0, variance 1) as the paper.
    """

    def __init__(
        self,
        candidate: Candidate,
        *,
        mask_ratio: float = 0.6,
        patch: int | None = None,
        decoder_dim: int = 512,
        decoder_depth: int = 1,
        norm_pix_loss: bool = False,
    ) -> None:
        super().__init__()
        check_fcmae(candidate, patch=patch, mask_ratio=mask_ratio, source="FCMAE")
        self.candidate = candidate
        self.patch, self.side = patch_grid(candidate, patch)
        self.stride = candidate.stage_stride(candidate.num_stages - 1)
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        self.encoder = build_model(candidate)
        self.masking = MaskState()
        for m in self.encoder.modules():
            if _mixes_positions(m):
                m.register_forward_pre_hook(partial(_premask, self.masking))
            elif isinstance(m, AffinityMixer):
                m.mask_source = self.masking
        self.proj = nn.Conv2d(candidate.widths[-1], decoder_dim, 1)
        self.mask_token = nn.Parameter(torch.zeros(1, decoder_dim, 1, 1))
        nn.init.normal_(self.mask_token, std=0.02)  # as the official code
        self.decoder = nn.Sequential(
            *(ConvNeXtBlock(decoder_dim, kernel_size=7, grn=True) for _ in range(decoder_depth))
        )
        self.pred = nn.Conv2d(decoder_dim, self.stride**2 * candidate.in_chans, 1)

    def random_mask(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, h, w) over the patch grid, 1 = masked, 0 = visible; ``int(L * (1 - ratio))``
        patches of each image stay visible, as in the official code."""
        n = self.side * self.side
        keep = int(n * (1 - self.mask_ratio))
        device = self.mask_token.device
        noise_device = generator.device if generator is not None else device
        order = torch.rand(batch, n, generator=generator, device=noise_device).argsort(dim=1)
        order = order.to(device)
        mask = torch.ones(batch, n, device=device)
        mask.scatter_(1, order[:, :keep], 0.0)
        return mask.reshape(batch, self.side, self.side)

    def encode(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The last stage's features (B, C, h, w), zero at masked positions."""
        self.masking.set(mask)
        feats = self.encoder.forward_features(images)
        return feats * self.masking.keep(*feats.shape[-2:], feats.dtype)

    def forward(
        self, images: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, prediction): MSE over the pixels of masked patches; the prediction is
        (B, stride * stride * in_chans, h, w) at the last stage's resolution."""
        if mask is None:
            mask = self.random_mask(images.shape[0])
        feats = self.encode(images, mask)
        keep = self.masking.keep(*feats.shape[-2:], feats.dtype)
        x = self.proj(feats)
        x = x * keep + self.mask_token.to(x.dtype) * (1 - keep)
        pred = self.pred(self.decoder(x))
        return self._loss(images, pred, mask), pred

    def _loss(self, images: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        target = F.pixel_unshuffle(images, self.stride)  # (B, s*s*C, h, w), channel-major
        if self.norm_pix_loss:  # per position over its s*s*C pixels, as the official code
            mean = target.mean(dim=1, keepdim=True)
            var = target.var(dim=1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        factor = self.patch
        masked = mask.unsqueeze(1).repeat_interleave(factor, 2).repeat_interleave(factor, 3)
        masked = F.pixel_unshuffle(masked.expand(-1, images.shape[1], -1, -1), self.stride)
        dtype = torch.promote_types(pred.dtype, torch.float32)  # upcast half precision only
        err = (pred.to(dtype) - target.to(dtype)).square() * masked
        return err.sum() / masked.sum().clamp_min(1)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights, loadable by ``nas.build_model(candidate)`` (strict): the
        decoder, projection and mask token are other modules, not filtered-out keys."""
        return self.encoder.state_dict()
