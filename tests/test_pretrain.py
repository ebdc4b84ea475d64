"""FCMAE pre-training: the encoder keeps the mask exactly for every block style and macro, the
loss is over masked patches only, pre-training lowers it, and the encoder loads into the
candidate's own network."""

from __future__ import annotations

import pytest
import torch

import nas
from nas.errors import SpaceError
from nas.pretrain import FCMAE, check_fcmae
from nas.space.candidate import Candidate

SMALL = dict(
    image_size=64, in_chans=2, num_classes=10, widths=(16, 32, 64, 64), depths=(1, 1, 1, 1)
)
CANDIDATES = {
    "convnext": dict(block="convnext"),
    "replk": dict(block="replk", kernels=(13, 9, 5, 3), small_kernels=(3, 3, 3, 0)),
    "container_static_global": dict(
        block="container", mixers=("static", "static", "static_global", "static_global")
    ),
    "container_attention": dict(
        block="container", mixers=("static", "mixed", "dynamic", "dynamic"), head_dim=16
    ),
    "convnext_attention": dict(
        block="convnext", mixers=("static", "static", "dynamic", "dynamic"), head_dim=16
    ),
    "revcol_2": dict(macro="revcol", block="convnext", columns=2, reversible=True),
    "revcol_2_plain": dict(macro="revcol", block="convnext", columns=2, reversible=False),
}


def _fcmae(kind: str, grn: bool, *, dtype=torch.float64, patch: int = 16) -> FCMAE:
    torch.manual_seed(0)
    c = Candidate(**SMALL, grn=grn, **CANDIDATES[kind])
    m = FCMAE(c, patch=patch, decoder_dim=24).to(dtype)
    with torch.no_grad():  # GRN's gamma/beta start at zero: make GRN do something
        for name, p in m.named_parameters():
            if name.endswith(("gamma", "beta")):
                p.normal_(0, 0.5)
    return m


@pytest.mark.parametrize("grn", [False, True])
@pytest.mark.parametrize("kind", sorted(CANDIDATES))
def test_masked_pixels_never_reach_visible_positions(kind, grn):
    m = _fcmae(kind, grn).train()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 64, 64, dtype=torch.float64, generator=gen)
    mask = m.random_mask(3, gen)
    pixel_mask = mask.repeat_interleave(16, 1).repeat_interleave(16, 2).unsqueeze(1).bool()
    noise = torch.randn(x.shape, dtype=x.dtype, generator=gen) * 10
    changed_masked = torch.where(pixel_mask, x + noise, x)
    changed_visible = torch.where(pixel_mask, x, x + noise)
    with torch.no_grad():
        base = m.encode(x, mask)
        same = m.encode(changed_masked, mask)
        other = m.encode(changed_visible, mask)
    keep = m.masking.keep(*base.shape[-2:], base.dtype).bool().expand_as(base)
    assert keep.any() and (~keep).any()
    # exact in float64: the masked pixels do not enter any visible position's computation
    assert torch.equal(base[keep], same[keep])
    assert (base[keep] - other[keep]).abs().max() > 1e-3
    assert not base[~keep].any()  # masked positions of the output are zero


@pytest.mark.parametrize("kind", ["convnext", "container_attention", "revcol_2"])
def test_mask_holds_in_float32_and_in_the_gradients(kind):
    """float32 to 1e-6; and the encoder's gradient w.r.t. the image is zero on masked pixels
    (reversible RevCol recomputes its levels in backward under the same mask)."""
    m = _fcmae(kind, True, dtype=torch.float32).train()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 2, 64, 64, generator=gen)
    mask = m.random_mask(2, gen)
    pixel_mask = mask.repeat_interleave(16, 1).repeat_interleave(16, 2).unsqueeze(1).bool()
    noise = torch.randn(x.shape, generator=gen) * 10
    with torch.no_grad():
        base = m.encode(x, mask)
        same = m.encode(torch.where(pixel_mask, x + noise, x), mask)
    keep = m.masking.keep(*base.shape[-2:]).bool().expand_as(base)
    assert (base[keep] - same[keep]).abs().max() <= 1e-6
    xg = x.clone().requires_grad_(True)
    m.encode(xg, mask).square().sum().backward()
    grad = xg.grad.expand(-1, 2, -1, -1)
    assert grad[pixel_mask.expand_as(grad)].abs().max() == 0
    assert grad[~pixel_mask.expand_as(grad)].abs().max() > 0


def test_a_patch_finer_than_the_stride_keeps_the_mask_at_coarser_stages():
    """patch 8 on a 64 px image (8x8 grid) with a stride-32 network: stages at 4x4 and 2x2 are
    coarser than the grid; a position there is visible when any of its patches is."""
    m = _fcmae("convnext", True, patch=8)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 64, 64, dtype=torch.float64, generator=gen)
    mask = m.random_mask(2, gen)
    assert mask.shape == (2, 8, 8) and int(mask[0].sum()) == 64 - int(64 * 0.4)
    pixel_mask = mask.repeat_interleave(8, 1).repeat_interleave(8, 2).unsqueeze(1).bool()
    with torch.no_grad():
        base = m.encode(x, mask)
        same = m.encode(torch.where(pixel_mask, x * 5 + 1, x), mask)
    assert torch.equal(base, same)


def test_loss_counts_masked_patches_only_and_decoder_is_not_in_the_encoder():
    m = _fcmae("convnext", True)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 2, 64, 64, dtype=torch.float64, generator=gen)
    mask = m.random_mask(2, gen)
    loss, pred = m(x, mask)
    assert pred.shape == (2, 32 * 32 * 2, 2, 2)
    # by hand: unpatchify the prediction, squared error on masked pixels, mean over them
    image = torch.nn.functional.pixel_shuffle(pred, 32)
    pixel_mask = mask.repeat_interleave(16, 1).repeat_interleave(16, 2).unsqueeze(1)
    pixel_mask = pixel_mask.expand_as(x)
    expected = ((image - x) ** 2 * pixel_mask).sum() / pixel_mask.sum()
    assert torch.allclose(loss, expected, rtol=1e-12)
    # the encoder's weights load strictly into the candidate's own network
    net = nas.build_model(m.candidate)
    net.load_state_dict(m.encoder_state_dict(), strict=True)
    assert not any(
        k.startswith(("proj", "pred", "decoder", "mask_token")) for k in m.encoder_state_dict()
    )


def test_settings_that_cannot_keep_the_mask_are_refused():
    c = Candidate(**SMALL)
    with pytest.raises(
        SpaceError, match=r"pretrain.patch: expected a divisor of image_size 64, got 24"
    ):
        check_fcmae(c, patch=24, mask_ratio=0.6, source="s.yaml")
    with pytest.raises(
        SpaceError, match=r"pretrain.mask_ratio: 0.6 over 1x1 patches of 64 px leaves no"
    ):
        check_fcmae(c, patch=64, mask_ratio=0.6, source="s.yaml")
    with pytest.raises(SpaceError, match=r"mask_ratio: expected a number in \(0, 1\), got 1.0"):
        check_fcmae(c, patch=16, mask_ratio=1.0, source="s.yaml")
    odd = Candidate(**{**SMALL, "image_size": 96})  # stages at 24, 12, 6, 3 px
    with pytest.raises(
        SpaceError,
        match=r"stage 1 runs at 12x12, which neither divides nor is a multiple of the 8x8 patch grid",
    ):
        check_fcmae(odd, patch=12, mask_ratio=0.5, source="s.yaml")
    check_fcmae(odd, patch=32, mask_ratio=0.5, source="s.yaml")  # 3x3 grid: fine
