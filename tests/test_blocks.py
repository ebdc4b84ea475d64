"""Tests for nas.models.blocks: GRN maths, re-parameterisation equivalence, golden parameter counts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.models.blocks import (
    DW_MIXERS,
    GRN,
    MIXERS,
    AffinityMixer,
    ContainerBlock,
    ConvFFN,
    ConvNeXtBlock,
    DropPath,
    LayerNorm2d,
    LayerScale,
    RepDWConv,
    RepLKBlock,
    conv_bn,
    fuse_conv_bn,
    make_norm2d,
    reparameterize_modules,
)

H = W = 8
STYLES = ("convnext", "convnext_bn", "replk", "container")


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny tensors: intra-op threads only add sync cost (and stall on a loaded 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics/affine, GRN and LayerScale values and gates, so every branch matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=gen) * 0.3 + 1.0)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            elif isinstance(m, GRN):
                m.gamma.copy_(torch.randn(m.gamma.shape, generator=gen) * 0.5)
                m.beta.copy_(torch.randn(m.beta.shape, generator=gen) * 0.5)
            elif isinstance(m, AffinityMixer) and m.gate is not None:
                m.gate.fill_(0.7)
    return module


def make_block(style: str, mixer: str, *, dim: int = 32) -> nn.Module:
    small = 3 if mixer in DW_MIXERS else 0
    common = {"mixer": mixer, "head_dim": 16, "tokens": H * W, "small_kernel": small}
    if style.startswith("convnext"):
        norm = "bn" if style == "convnext_bn" else "ln"
        return ConvNeXtBlock(dim, kernel_size=7, grn=True, layer_scale=1.0, norm=norm, **common)
    if style == "replk":
        return RepLKBlock(dim, kernel_size=7, **common)
    return ContainerBlock(dim, kernel_size=5, grn=True, layer_scale=1.0, mlp_ratio=2.0, **common)


# ----------------------------------------------------------------------------------------- GRN


@pytest.mark.parametrize("channels_last", [True, False])
def test_grn_is_identity_at_init(channels_last: bool) -> None:
    x = torch.randn(2, 5, 6, 12) if channels_last else torch.randn(2, 12, 5, 6)
    grn = GRN(12, channels_last=channels_last)
    assert grn.gamma.shape == ((1, 1, 1, 12) if channels_last else (1, 12, 1, 1))
    assert torch.equal(grn(x), x)


def test_grn_layouts_agree() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 16, 5, 7, generator=gen)  # NCHW
    last, first = GRN(16, channels_last=True), GRN(16, channels_last=False)
    with torch.no_grad():
        gamma, beta = torch.randn(16, generator=gen), torch.randn(16, generator=gen)
        last.gamma.copy_(gamma.view(1, 1, 1, -1)), last.beta.copy_(beta.view(1, 1, 1, -1))
        first.gamma.copy_(gamma.view(1, -1, 1, 1)), first.beta.copy_(beta.view(1, -1, 1, 1))
    y_last = last(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(y_last, first(x), atol=1e-6, rtol=1e-6)


def test_grn_matches_formula() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 5, 10, generator=gen)  # NHWC
    grn = GRN(10)
    with torch.no_grad():
        grn.gamma.normal_(generator=gen), grn.beta.normal_(generator=gen)
    g = torch.sqrt((x * x).sum(dim=(1, 2), keepdim=True))  # L2 over H, W per sample and channel
    nx = g / (g.mean(dim=-1, keepdim=True) + 1e-6)  # mean over channels, eps on the mean only
    expected = grn.gamma * (x * nx) + grn.beta + x
    torch.testing.assert_close(grn(x), expected, atol=1e-6, rtol=1e-6)


def test_grn_large_values_low_precision() -> None:
    x = torch.full((1, 64, 64, 8), 1200.0) + torch.rand(1, 64, 64, 8)
    grn = GRN(8)
    with torch.no_grad():
        grn.gamma.fill_(0.5), grn.beta.fill_(0.1)
    reference = grn(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_bf16 = grn(x.bfloat16())
    y_fp16 = grn.half()(x.half())  # in fp16 the 64x64 sum of squares alone would be inf
    for y in (y_bf16, y_fp16):
        assert torch.isfinite(y).all()
        torch.testing.assert_close(y.float(), reference, rtol=2e-2, atol=0.0)


def test_grn_zero_channel_has_finite_gradient() -> None:
    x = torch.randn(2, 4, 4, 6)
    x[:, :, :, 0] = 0.0
    x.requires_grad_(True)
    grn = GRN(6)
    with torch.no_grad():
        grn.gamma.fill_(1.0)
    grn(x).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(grn.gamma.grad).all()


# ------------------------------------------------------------------------------ norms, helpers


def test_layernorm2d_and_make_norm2d() -> None:
    x = torch.randn(2, 6, 3, 5)
    ln = LayerNorm2d(6)
    with torch.no_grad():
        ln.weight.normal_(), ln.bias.normal_()
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias, 1e-6).permute(
        0, 3, 1, 2
    )
    torch.testing.assert_close(ln(x), expected)
    assert isinstance(make_norm2d("ln", 6), LayerNorm2d) and make_norm2d("ln", 6).eps == 1e-6
    bn = make_norm2d("bn", 6)
    assert isinstance(bn, nn.BatchNorm2d) and bn.eps == 1e-5
    assert make_norm2d("bn", 6, eps=1e-3).eps == 1e-3
    with pytest.raises(ValueError, match="'bn', 'ln'"):
        make_norm2d("gn", 6)


def test_layer_scale_and_drop_path() -> None:
    x = torch.randn(4, 3, 2, 2)
    torch.testing.assert_close(LayerScale(3, 0.5, channels_last=False)(x), 0.5 * x)
    torch.testing.assert_close(LayerScale(2, 2.0)(x), 2.0 * x)
    drop = DropPath(0.5)
    assert torch.equal(drop.eval()(x), x) and torch.equal(DropPath(0.0).train()(x), x)
    torch.manual_seed(0)
    y = drop.train()(torch.ones(64, 3, 2, 2))
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()  # whole samples dropped, not elements
    with pytest.raises(ValueError, match="drop_path"):
        DropPath(1.0)


def test_conv_bn_structure() -> None:
    seq = conv_bn(4, 8, 3, stride=2, relu=True)
    assert list(dict(seq.named_children())) == ["conv", "bn", "relu"]
    assert seq[0].bias is None and seq[0].padding == (1, 1) and seq[0].stride == (2, 2)
    assert seq(torch.randn(1, 4, 8, 8)).shape == (1, 8, 4, 4)


# -------------------------------------------------------------------------------- RepDWConv


@pytest.mark.parametrize("kernels", [(31, 5), (13, 3), (7, 3), (3, 1)])
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_repdwconv_reparameterize_is_exact(kernels: tuple[int, int], dtype, atol: float) -> None:
    k_large, k_small = kernels
    conv = randomise(RepDWConv(6, k_large, small_kernel=k_small), seed=k_large).to(dtype).eval()
    x = torch.randn(2, 6, 20, 20, dtype=dtype)
    expected = conv(x)
    conv.reparameterize()
    assert conv.large is None and conv.small is None and conv.fused.bias is not None
    assert conv.fused.weight.shape == (6, 1, k_large, k_large)
    torch.testing.assert_close(conv(x), expected, atol=atol, rtol=atol)


@pytest.mark.parametrize(
    ("bn", "small_bn", "stride"), [(False, True, 1), (True, False, 2), (False, False, 1)]
)
def test_repdwconv_variants(bn: bool, small_bn: bool, stride: int) -> None:
    conv = RepDWConv(4, 7, small_kernel=3, bn=bn, small_bn=small_bn, stride=stride)
    randomise(conv).double().eval()
    assert (conv.large.bn is None) == (not bn) and (conv.large.conv.bias is None) == bn
    x = torch.randn(1, 4, 11, 11, dtype=torch.float64)
    expected = conv(x)
    conv.reparameterize()
    torch.testing.assert_close(conv(x), expected, atol=1e-10, rtol=1e-10)


def test_repdwconv_worked_example() -> None:
    """seeds.md section 3.3: one channel, K = 3, k = 1."""
    conv = RepDWConv(1, 3, small_kernel=1).double().eval()
    eps = conv.large.bn.eps
    with torch.no_grad():
        conv.large.conv.weight.fill_(1.0)
        conv.large.bn.weight.fill_(2.0), conv.large.bn.bias.fill_(1.0)
        conv.large.bn.running_mean.fill_(0.5), conv.large.bn.running_var.fill_(4.0 - eps)
        conv.small.conv.weight.fill_(3.0)
        conv.small.bn.weight.fill_(1.0), conv.small.bn.bias.fill_(0.0)
        conv.small.bn.running_mean.fill_(1.0), conv.small.bn.running_var.fill_(1.0 - eps)
    x = torch.arange(16, dtype=torch.float64).view(1, 1, 4, 4)
    before = conv(x)
    conv.reparameterize()
    kernel = torch.ones(3, 3, dtype=torch.float64)
    kernel[1, 1] = 4.0
    torch.testing.assert_close(conv.fused.weight[0, 0], kernel, atol=1e-12, rtol=0.0)
    torch.testing.assert_close(conv.fused.bias, torch.tensor([-0.5], dtype=torch.float64))
    first_row = torch.tensor([9.5, 20.5, 29.5, 26.5], dtype=torch.float64)
    torch.testing.assert_close(before[0, 0, 0], first_row, atol=1e-12, rtol=0.0)
    torch.testing.assert_close(conv(x), before, atol=1e-12, rtol=0.0)


def test_repdwconv_refuses_inexact_merges() -> None:
    conv = RepDWConv(4, 7, small_kernel=3)
    with pytest.raises(RuntimeError, match="training mode"):
        conv.reparameterize()
    for kwargs in (
        {"kernel_size": 6},
        {"kernel_size": 7, "small_kernel": 4},
        {"kernel_size": 5, "small_kernel": 5},
    ):
        with pytest.raises(ValueError, match="kernel"):
            RepDWConv(4, **kwargs)
    conv.eval()
    conv.large.conv = nn.Conv2d(4, 4, 6, padding=3, groups=4, bias=False)  # even kernel swapped in
    with pytest.raises(ValueError, match="even"):
        conv.reparameterize()
    assert conv.fused is None


def test_repdwconv_reparameterize_is_idempotent() -> None:
    conv = randomise(RepDWConv(4, 5, small_kernel=3)).eval()
    conv.reparameterize()
    fused = conv.fused
    conv.reparameterize()
    assert conv.fused is fused


def test_fuse_conv_bn_with_conv_bias() -> None:
    conv = nn.Conv2d(3, 5, 3, padding=1).double()
    bn = randomise(nn.BatchNorm2d(5)).double().eval()
    weight, bias = fuse_conv_bn(conv.weight, conv.bias, bn)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(F.conv2d(x, weight, bias, padding=1), bn(conv(x)))


def test_reparameterize_modules_copies() -> None:
    model = nn.Sequential(
        RepDWConv(4, 7, small_kernel=3), nn.ReLU(), RepDWConv(4, 5, small_kernel=3)
    )
    randomise(model)
    deployed = reparameterize_modules(model)
    assert model.training and all(m.fused is None for m in model if isinstance(m, RepDWConv))
    assert not deployed.training and all(
        m.fused is not None for m in deployed if isinstance(m, RepDWConv)
    )
    again = reparameterize_modules(deployed)
    x = torch.randn(1, 4, 9, 9)
    torch.testing.assert_close(again(x), deployed(x))
    torch.testing.assert_close(deployed(x), model.eval()(x), atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------ mixers


def test_mixer_validation() -> None:
    with pytest.raises(
        ValueError, match="'container', 'dynamic', 'mixed', 'static', 'static_global'"
    ):
        AffinityMixer(32, mode="attention")
    with pytest.raises(ValueError, match="head_dim"):
        AffinityMixer(40, mode="dynamic", head_dim=32)
    with pytest.raises(ValueError, match="tokens"):
        AffinityMixer(32, mode="static_global")
    mixer = AffinityMixer(32, mode="static_global", tokens=H * W)
    with pytest.raises(ValueError, match="tokens=64"):
        mixer(torch.randn(1, 32, 4, 4))
    with pytest.raises(ValueError, match="mixer"):
        ConvNeXtBlock(32, mixer="nope")
    assert set(MIXERS) == {"static", "dynamic", "mixed", "static_global", "container"}
    with pytest.raises(ValueError, match="mixer 'container' needs tokens"):
        AffinityMixer(32, mode="container")


def _manual_attention(q, k, v, heads: int) -> torch.Tensor:
    b, c, h, w = v.shape
    outs = []
    for i in range(heads):
        sl = slice(i * c // heads, (i + 1) * c // heads)
        qi, ki, vi = (t[:, sl].flatten(2).transpose(1, 2) for t in (q, k, v))  # (B, N, d)
        attn = torch.softmax(qi @ ki.transpose(1, 2) * (c // heads) ** -0.5, dim=-1)
        outs.append((attn @ vi).transpose(1, 2).reshape(b, c // heads, h, w))
    return torch.cat(outs, dim=1)


def test_attention_and_mixed_match_hand_written() -> None:
    x = torch.randn(2, 32, 4, 5)
    dynamic = AffinityMixer(32, mode="dynamic", head_dim=8, v_proj=False, out_proj=False)
    q, k = dynamic.qk(x).chunk(2, dim=1)
    torch.testing.assert_close(dynamic(x), _manual_attention(q, k, x, 4), atol=1e-5, rtol=1e-5)
    mixed = AffinityMixer(32, mode="mixed", head_dim=8, kernel_size=3)
    q, k, v = mixed.qkv(x).chunk(3, dim=1)
    blend = 0.5 * _manual_attention(q, k, v, 4) + 0.5 * mixed.dw(v)  # gate 0 -> sigmoid 0.5
    torch.testing.assert_close(mixed(x), mixed.proj(blend), atol=1e-5, rtol=1e-5)


def test_static_global_applies_token_matrix() -> None:
    mixer = AffinityMixer(6, mode="static_global", tokens=12, v_proj=False, out_proj=False)
    x = torch.randn(2, 6, 3, 4)
    expected = torch.einsum("ij,bcj->bci", mixer.affinity, x.flatten(2)).reshape(x.shape)
    torch.testing.assert_close(mixer(x), expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        mixer.affinity.copy_(torch.eye(12))
    torch.testing.assert_close(mixer(x), x)


def test_container_mixer_is_the_papers_formula() -> None:
    """(alpha softmax(Q K^T / sqrt(d)) + beta A_static) V per head on the same V, then W1."""
    torch.manual_seed(0)
    mixer = AffinityMixer(32, mode="container", head_dim=8, tokens=20).double()
    with torch.no_grad():
        mixer.alpha.fill_(0.7)
        mixer.beta.fill_(-1.3)
    x = torch.randn(2, 32, 4, 5, dtype=torch.float64)
    q, k, v = mixer.qkv(x).chunk(3, dim=1)
    heads = []
    for i in range(4):
        sl = slice(8 * i, 8 * (i + 1))
        qi, ki, vi = (t[:, sl].flatten(2).transpose(1, 2) for t in (q, k, v))  # (B, N, d)
        a_dyn = torch.softmax(qi @ ki.transpose(1, 2) / math.sqrt(8), dim=-1)
        a = 0.7 * a_dyn + -1.3 * mixer.affinity  # one N x N matrix for every head
        heads.append((a @ vi).transpose(1, 2).reshape(2, 8, 4, 5))
    expected = mixer.proj(torch.cat(heads, dim=1))
    torch.testing.assert_close(mixer(x), expected, atol=1e-12, rtol=1e-12)
    assert mixer.alpha.shape == mixer.beta.shape == (1,)
    fresh = AffinityMixer(32, mode="container", head_dim=8, tokens=20)
    assert fresh.alpha.item() == fresh.beta.item() == 0.5  # the documented init


# ------------------------------------------------------------------------------------ blocks


@pytest.mark.parametrize("mixer", sorted(MIXERS))
@pytest.mark.parametrize("style", STYLES)
def test_block_deploy_equivalence(style: str, mixer: str) -> None:
    block = randomise(make_block(style, mixer)).eval()
    x = torch.randn(2, 32, H, W)
    expected = block(x)
    deployed = reparameterize_modules(block)
    reps = [m for m in deployed.modules() if isinstance(m, RepDWConv)]
    assert all(m.fused is not None and m.large is None and m.small is None for m in reps)
    assert all(m.fused is None for m in block.modules() if isinstance(m, RepDWConv))
    if mixer in DW_MIXERS:
        assert reps and n_params(deployed) < n_params(block)
    torch.testing.assert_close(deployed(x), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mixer", sorted(MIXERS))
@pytest.mark.parametrize("style", (*STYLES, "convffn"))
def test_block_forward_backward(style: str, mixer: str) -> None:
    if style == "convffn":
        block = ConvFFN(32, grn=True)
    else:
        block = make_block(style, mixer)
    x = torch.randn(2, 32, H, W, requires_grad=True)
    y = block.train()(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert torch.isfinite(x.grad).all()


# ------------------------------------------------------------------------ golden param counts


def test_convnext_v2_block_params() -> None:
    c = 40
    dw, ln, fc1, grn, fc2 = 7 * 7 * c + c, 2 * c, c * 4 * c + 4 * c, 2 * 4 * c, 4 * c * c + c
    assert n_params(ConvNeXtBlock(c, grn=True)) == dw + ln + fc1 + grn + fc2
    assert n_params(ConvNeXtBlock(c, layer_scale=1e-6)) == dw + ln + fc1 + fc2 + c  # V1


def test_replk_pair_params() -> None:
    c = 128
    lk = c * 31 * 31 + 2 * c + c * 25 + 2 * c
    pre_bn, pw1, pw2 = 2 * c, c * c + 2 * c, c * c + 2 * c
    assert n_params(RepLKBlock(c, kernel_size=31, small_kernel=5)) == pre_bn + pw1 + lk + pw2
    assert n_params(ConvFFN(c)) == 2 * c + (c * 4 * c + 8 * c) + (4 * c * c + 2 * c)
    deployed = reparameterize_modules(RepLKBlock(c, kernel_size=31, small_kernel=5))
    assert n_params(deployed) == pre_bn + pw1 + (c * 31 * 31 + c) + pw2


def test_container_block_params() -> None:
    c = 64
    cblock = 64 * 9 + 64 + 128 + (64 * 64 + 64) + (64 * 25 + 64) + (64 * 64 + 64) + 128
    cblock += (64 * 512 + 512) + (512 * 64 + 64)
    assert n_params(ContainerBlock(c, mlp_ratio=8.0)) == cblock
    c = 512
    mix = (c * 9 + c) + 2 * c + (c * 3 * c + 3 * c) + (c * 25 + c) + 1 + (c * c + c) + 2 * c
    mix += (c * 4 * c + 4 * c) + (4 * c * c + c)
    assert n_params(ContainerBlock(c, mixer="mixed", mlp_ratio=4.0)) == mix


def _stage_sum(blocks_per_stage) -> int:
    return sum(depth * sum(n_params(b) for b in blocks) for depth, blocks in blocks_per_stage)


def test_whole_model_golden_counts() -> None:
    """Blocks plus hand-counted stems/transitions/heads reproduce the official totals (seeds.md)."""
    with torch.device("meta"):
        dims = (40, 80, 160, 320)
        convnext = _stage_sum((d, [ConvNeXtBlock(c, grn=True)]) for d, c in zip((2, 2, 6, 2), dims))
        convnext += (
            3 * 40 * 16 + 40 + 80 + sum(2 * a + a * b * 4 + b for a, b in zip(dims, dims[1:]))
        )
        assert convnext + 2 * 320 + 320 * 1000 + 1000 == 3_708_400  # ConvNeXt V2-Atto

        dims, kernels = (128, 256, 512, 1024), (31, 29, 27, 13)
        pairs = [[RepLKBlock(c, kernel_size=k), ConvFFN(c)] for c, k in zip(dims, kernels)]
        stem = (3 * 128 * 9 + 256) + (128 * 9 + 256) + (128 * 128 + 256) + (128 * 9 + 256)
        other = stem + sum(a * b + 2 * b + b * 9 + 2 * b for a, b in zip(dims, dims[1:]))
        other += 2 * 1024 + 1024 * 1000 + 1000
        assert _stage_sum(zip((2, 2, 18, 2), pairs)) + other == 79_864_168  # RepLKNet-31B train
        deployed = [[reparameterize_modules(b) for b in pair] for pair in pairs]
        assert _stage_sum(zip((2, 2, 18, 2), deployed)) + other == 79_527_272  # deploy

        dims, prev = (64, 128, 320, 512), (3, 64, 128, 320)
        blocks = [
            ContainerBlock(c, mixer=m, mlp_ratio=r)
            for c, m, r in zip(dims, ("static",) * 3 + ("mixed",), (8, 8, 4, 4))
        ]
        embeds = sum(a * b * p * p + b + 2 * b for a, b, p in zip(prev, dims, (4, 2, 2, 2)))
        head = 2 * 512 + 512 * 1000 + 1000
        total = _stage_sum(zip((3, 4, 8, 3), [[b] for b in blocks])) + embeds + head
        assert total == 20_633_643  # Container-Light


def _official_grn(grn: GRN, x: torch.Tensor) -> torch.Tensor:
    """The official ConvNeXt V2 code's GRN: gamma * (X * Nx) + beta + X."""
    spatial, channel = ((1, 2), -1) if grn.channels_last else ((2, 3), 1)
    gx = torch.norm(x, p=2, dim=spatial, keepdim=True)
    nx = gx / (gx.mean(dim=channel, keepdim=True) + 1e-6)
    return grn.gamma * (x * nx) + grn.beta + x


@pytest.mark.parametrize("channels_last", [True, False])
def test_grn_equals_the_official_formula_in_float64(channels_last: bool) -> None:
    """The fused form x * (1 + gamma * Nx) + beta against the official code's
    gamma * (X * Nx) + beta + X, in float64 (stays float64: no fp32 round trip)."""
    torch.manual_seed(0)
    grn = GRN(16, channels_last=channels_last).double()
    with torch.no_grad():
        grn.gamma.normal_()
        grn.beta.normal_()
    shape = (3, 9, 9, 16) if channels_last else (3, 16, 9, 9)
    x = torch.randn(shape, dtype=torch.float64)
    official = _official_grn(grn, x)
    y = grn(x)
    assert y.dtype == torch.float64
    assert (y - official).abs().max().item() <= 1e-12
    from nas.models.blocks.grn import _grn_ops  # what a trace (fvcore) records

    traced = _grn_ops(x, grn.gamma, grn.beta, grn.eps, channels_last)
    assert (traced - y).abs().max().item() <= 1e-15


def test_grn_half_precision_does_not_overflow() -> None:
    """fp16: a 64x64 map of 1200s has an L2 norm of 76,800 > fp16's 65,504 (norm taken in fp32)."""
    grn = GRN(8).half()
    with torch.no_grad():
        grn.gamma.fill_(0.5)
    y = grn(torch.full((1, 64, 64, 8), 1200.0, dtype=torch.float16))
    assert y.dtype == torch.float16 and torch.isfinite(y).all()
    assert torch.allclose(y.float(), torch.full_like(y.float(), 1200.0 * 1.5), rtol=1e-2)


@pytest.mark.parametrize("channels_last", [True, False])
def test_grn_backward_is_the_gradient_of_the_official_formula(channels_last: bool) -> None:
    """GRN's hand-written backward: torch.autograd.gradcheck (finite differences, float64), and
    equal to autograd through the official formula; an all-zero channel gets finite gradients."""
    torch.manual_seed(1)
    grn = GRN(6, channels_last=channels_last).double()
    with torch.no_grad():
        grn.gamma.normal_()
        grn.beta.normal_()
    shape = (2, 4, 5, 6) if channels_last else (2, 6, 4, 5)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, g, b: grn.__class__.forward(grn, x), (x, grn.gamma, grn.beta)
    )
    dy = torch.randn(shape, dtype=torch.float64)
    ours = torch.autograd.grad(grn(x), (x, grn.gamma, grn.beta), dy)
    ref = torch.autograd.grad(_official_grn(grn, x), (x, grn.gamma, grn.beta), dy)
    for a, b in zip(ours, ref):
        assert (a - b).abs().max().item() <= 1e-12
    z = x.detach().clone()
    (z[..., 0] if channels_last else z[:, 0]).zero_()
    z.requires_grad_(True)
    (gz,) = torch.autograd.grad(grn(z).sum(), (z,))
    assert torch.isfinite(gz).all()
