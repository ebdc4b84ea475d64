"""build_model / reparameterize: exact preset parameter counts, deploy equivalence, and every
sampled candidate of spaces/seeds.yaml trains (forward + backward) at 32x32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nas
from tests.conftest import PRESETS, ROOT, randomize_for_equivalence

# Published parameter counts (num_classes=1000, training form); seeds.md, [run] columns.
PRESET_PARAMS = {
    "convnextv2_atto": 3_708_400,
    "convnextv2_tiny": 28_635_496,
    "convnext_tiny": 28_589_128,
    "replknet_31b": 79_864_168,
    "container_light": 20_633_643,
    "revcol_t": 30_456_168,
    "revcol_s": 60_568_424,
}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PRESET_PARAMS))
def test_preset_parameter_count(name):
    model = nas.build_model(nas.load_candidate(PRESETS / f"{name}.yaml"))
    assert n_params(model) == PRESET_PARAMS[name]


def test_replknet_deploy_parameter_count_and_original_untouched():
    model = nas.build_model(nas.load_candidate(PRESETS / "replknet_31b.yaml"))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    deploy = nas.reparameterize(model)
    assert n_params(deploy) == 79_527_272
    assert n_params(model) == 79_864_168  # the original keeps its branches
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert n_params(nas.reparameterize(deploy)) == 79_527_272  # no-op on a deploy model


@pytest.mark.parametrize("name", sorted(PRESET_PARAMS))
def test_preset_deploy_equivalence(name):
    torch.manual_seed(0)
    c = nas.load_candidate(PRESETS / f"{name}.yaml")
    model = randomize_for_equivalence(nas.build_model(c)).eval()
    deploy = nas.reparameterize(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        ref, out = model(x), deploy(x)
    assert out.shape == (2, 1000)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    if name != "replknet_31b":  # no re-param branch: deploy form has the same parameters
        assert n_params(deploy) == n_params(model)


def test_container_light_other_resolution():
    c = nas.Candidate.from_params(
        {"image_size": 96}, base=nas.load_candidate(PRESETS / "container_light.yaml")
    )
    model = nas.build_model(c)
    assert model(torch.randn(1, 3, 96, 96)).shape == (1, 1000)


def _seeds_samples(n: int, seed: int):
    space = nas.load_space(ROOT / "spaces" / "seeds.yaml")
    samples, _ = space.sample_distinct(n, np.random.default_rng(seed))
    return samples


def _unused_by_design(name: str) -> bool:
    # RevCol's first column has no previous column: c^(0) = 0, so its alphas never act. They
    # exist (and are counted) as in the official model, but receive no gradient.
    return name.startswith(("columns.0.alpha_theta.", "columns.0.alphas."))


@pytest.mark.parametrize("sample", _seeds_samples(20, seed=0), ids=lambda s: s.id)
def test_seeds_candidate_forward_backward(sample):
    c = sample.candidate
    torch.manual_seed(0)
    model = nas.build_model(c)
    x = torch.randn(2, 3, c.image_size, c.image_size)
    out = model(x)
    assert out.shape == (2, c.num_classes)
    assert torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1])).backward()
    for name, p in model.named_parameters():
        if _unused_by_design(name):
            assert p.grad is None
            continue
        assert p.grad is not None, f"{c.id}: {name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{c.id}: {name} has a non-finite gradient"


def _reparam_samples():
    space = nas.load_space(ROOT / "spaces" / "seeds.yaml")
    rng = np.random.default_rng(7)
    out = []
    while len(out) < 8:
        s = space.sample(rng)
        if any(s.candidate.small_kernels):
            out.append(s)
    return out


@pytest.mark.parametrize("sample", _reparam_samples(), ids=lambda s: s.id)
def test_sampled_reparam_equivalence(sample):
    c = sample.candidate
    torch.manual_seed(1)
    model = randomize_for_equivalence(nas.build_model(c)).eval()
    deploy = nas.reparameterize(model)
    assert n_params(deploy) < n_params(model)  # every small branch is merged away
    x = torch.randn(2, 3, c.image_size, c.image_size)
    with torch.inference_mode():
        torch.testing.assert_close(deploy(x), model(x), atol=1e-4, rtol=1e-4)


def test_reparameterize_float64_exact():
    c = nas.Candidate(
        block="replk",
        depths=(1, 1, 1, 1),
        widths=(8, 16, 32, 32),
        kernels=(31, 13, 7, 3),
        small_kernels=(5, 3, 3, 1),
        num_classes=5,
        image_size=64,
    )
    model = randomize_for_equivalence(nas.build_model(c)).double().eval()
    deploy = nas.reparameterize(model)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.inference_mode():
        torch.testing.assert_close(deploy(x), model(x), atol=1e-10, rtol=0)


def test_build_model_rejects_non_candidate():
    with pytest.raises(TypeError, match="Candidate"):
        nas.build_model({"macro": "plain"})


# ---------------------------------------------------------------------- weights in
_LAYOUT_FILES = ROOT / "tests" / "data" / "official_state_dicts"


def _layout(name: str) -> dict[str, torch.Tensor]:
    """A reference layout filled with distinct random values (seeded)."""
    import json

    keys = json.loads((_LAYOUT_FILES / f"{name}.json").read_text())["keys"]
    items = keys.items() if isinstance(keys, dict) else keys
    g = torch.Generator().manual_seed(0)
    out = {k: torch.randn(tuple(shape), generator=g, dtype=torch.float64) for k, shape in items}
    for k in out:
        if k.endswith("num_batches_tracked"):  # an integer counter
            out[k] = torch.randint(0, 10**6, (), generator=g)
    return out


@pytest.mark.parametrize(
    "layout, preset, fmt, probes",
    [
        ("convnextv2_atto.timm", "convnextv2_atto", "timm", {
            "stages.2.blocks.1.mlp.grn.weight": "stages.2.1.grn.gamma",
            "stages.3.downsample.1.weight": "transitions.3.1.weight",
            "stages.1.blocks.0.mlp.fc1.weight": "stages.1.0.pwconv1.weight",
            "stages.0.blocks.1.conv_dw.bias": "stages.0.1.mixer.large.conv.bias",
        }),
        ("convnextv2_tiny.timm", "convnextv2_tiny", "timm", {
            "stages.2.blocks.1.mlp.grn.bias": "stages.2.1.grn.beta",
            "head.norm.weight": "head.norm.weight",
        }),
        ("convnext_tiny.timm", "convnext_tiny", "timm", {
            "stages.2.blocks.1.gamma": "stages.2.1.ls.gamma",
            "stages.1.downsample.0.weight": "transitions.1.0.weight",
            "stem.1.bias": "stem.1.bias",
        }),
        ("convnextv2_atto.official", "convnextv2_atto", "convnextv2-official", {
            "stages.2.1.grn.gamma": "stages.2.1.grn.gamma",
            "downsample_layers.0.0.weight": "stem.0.weight",
            "downsample_layers.2.1.weight": "transitions.2.1.weight",
            "stages.3.0.dwconv.weight": "stages.3.0.mixer.large.conv.weight",
            "norm.weight": "head.norm.weight",
            "head.bias": "head.fc.bias",
        }),
        ("convnextv2_tiny.official", "convnextv2_tiny", "convnextv2-official", {
            "stages.2.8.pwconv2.weight": "stages.2.8.pwconv2.weight",
        }),
        ("revcol_t.official", "revcol_t", "revcol-official", {
            "subnet2.alpha1": "columns.2.alphas.1",
            "subnet1.level0.fusion.up.channel_reschedule.0.weight": "columns.1.levels.0.up.proj.weight",
            "subnet1.level0.fusion.up.channel_reschedule.1.bias": "columns.1.levels.0.up.norm.bias",
            "subnet3.level2.fusion.down.1.weight": "columns.3.levels.2.down.1.weight",
            "subnet0.level2.blocks.3.gamma": "columns.0.levels.2.blocks.3.ls.gamma",
            "subnet0.level1.blocks.1.dwconv.weight": "columns.0.levels.1.blocks.1.mixer.large.conv.weight",
            "cls.classifier.0.weight": "head.norm.weight",
            "cls.classifier.1.bias": "head.fc.bias",
        }),
        ("revcol_t.official_inter_supv", "revcol_t+inter_supervision", "revcol-official", {
            "cls_blocks.1.classifier.1.weight": "aux_heads.1.fc.weight",
            "cls_blocks.3.classifier.0.bias": "head.norm.bias",
            "decoder_blocks.2.normal_layers.1.0.dwconv.weight": "decoders.2.stages.1.block.mixer.large.conv.weight",
            "decoder_blocks.0.normal_layers.2.0.gamma": "decoders.0.stages.2.block.ls.gamma",
            "decoder_blocks.1.proj_layers.0.1.weight": "decoders.1.stages.0.proj.1.weight",
            "decoder_blocks.1.projback.0.bias": "decoders.1.out.0.bias",
        }),
        ("revcol_s.official", "revcol_s", "revcol-official", {
            "subnet7.alpha3": "columns.7.alphas.3",
        }),
        ("replknet_31b.official", "replknet_31b", "replknet-official", {
            "stages.1.blocks.2.large_kernel.small_conv.bn.weight": "stages.1.2.lk.small.bn.weight",
            "stages.2.blocks.4.large_kernel.lkb_origin.conv.weight": "stages.2.4.lk.large.conv.weight",
            "stages.0.blocks.0.prelkb_bn.running_var": "stages.0.0.pre_bn.running_var",
            "stages.0.blocks.1.preffn_bn.bias": "stages.0.1.pre_bn.bias",
            "transitions.0.1.conv.weight": "transitions.1.1.conv.weight",
            "transitions.2.0.bn.running_mean": "transitions.3.0.bn.running_mean",
            "norm.running_mean": "head.pre_norm.running_mean",
            "head.weight": "head.fc.weight",
            "stem.3.bn.bias": "stem.3.bn.bias",
        }),
        ("container_light.official", "container_light", "container-official", {
            "patch_embed1.proj.weight": "stem.0.weight",
            "patch_embed1.norm.bias": "stem.1.bias",
            "patch_embed3.proj.weight": "transitions.2.0.weight",
            "patch_embed4.norm.weight": "transitions.3.1.weight",
            "blocks1.2.attn.weight": "stages.0.2.mixer.dw.large.conv.weight",
            "blocks2.1.conv1.bias": "stages.1.1.mixer.v.bias",
            "blocks3.7.conv2.weight": "stages.2.7.mixer.proj.weight",
            "blocks4.1.conv1.weight": "stages.3.1.mixer.qkv.weight",
            "blocks4.2.conv.weight": "stages.3.2.mixer.dw.large.conv.weight",
            "blocks4.0.sa_weight": "stages.3.0.mixer.gate",
            "blocks3.0.pos_embed.weight": "stages.2.0.pos_embed.weight",
            "blocks2.3.mlp.fc1.weight": "stages.1.3.mlp.fc1.weight",
            "norm.running_var": "head.pre_norm.running_var",
        }),
    ],
)  # fmt: skip
def test_published_layouts_load_strictly_and_every_tensor_lands(layout, preset, fmt, probes):
    weights = _layout(layout)
    name, _, extra = preset.partition("+")
    c = nas.load_candidate(PRESETS / f"{name}.yaml")
    model = nas.build_model(nas.Candidate.from_params({extra: True}, base=c) if extra else c)
    model = model.double()
    if layout.endswith("_deploy"):
        model = nas.reparameterize(model)
    assert nas.load_weights(model, weights) == fmt  # detected
    own = model.state_dict()
    assert len(own) == len(weights)  # strict: one tensor for each, none left over
    for theirs, ours in probes.items():
        assert torch.equal(own[ours].flatten(), weights[theirs].flatten()), (theirs, ours)
    # every value of the file is somewhere in the model, and nothing else is
    assert sorted(v.sum().item() for v in own.values()) == pytest.approx(
        sorted(v.sum().item() for v in weights.values()), rel=1e-12
    )


def test_a_mismatched_layout_is_one_line_with_missing_and_unexpected(tmp_path):
    weights = _layout("convnextv2_atto.timm")
    model = nas.build_model(nas.load_candidate(PRESETS / "convnextv2_tiny.yaml"))
    with pytest.raises(nas.UserError) as e:
        nas.load_weights(model, weights)
    text = str(e.value)
    assert text.startswith("weights (timm): not this network's structure: missing ")
    assert "shape mismatch stem.0.weight (40, 3, 4, 4) in the file, (96, 3, 4, 4) here" in text
    assert "more" in text and "\n" not in text
    path = tmp_path / "w.pt"
    torch.save({"state_dict": _layout("convnextv2_atto.official")}, path)
    atto = nas.build_model(nas.load_candidate(PRESETS / "convnextv2_atto.yaml")).double()
    assert nas.load_weights(atto, path) == "convnextv2-official"
    with pytest.raises(nas.UserError, match="format: expected one of"):
        nas.load_weights(atto, path, format="keras")


def test_official_replknet_deploy_weights_load_into_the_deploy_form():
    weights = _layout("replknet_31b.official_deploy")
    deploy = nas.reparameterize(nas.build_model(nas.load_candidate(PRESETS / "replknet_31b.yaml")))
    deploy = deploy.double()
    assert nas.load_weights(deploy, weights) == "replknet-official"
    fused = deploy.state_dict()["stages.3.0.lk.fused.bias"]
    assert torch.equal(fused, weights["stages.3.blocks.0.large_kernel.lkb_reparam.bias"])


def test_official_revcol_weights_need_the_official_alpha():
    c = nas.Candidate.from_params(
        {"revcol_alpha": "bounded"}, base=nas.load_candidate(PRESETS / "revcol_t.yaml")
    )
    with pytest.raises(nas.UserError, match=r"missing columns\.0\.alpha_theta\.0 \(1, 64, 1, 1\)"):
        nas.load_weights(nas.build_model(c), _layout("revcol_t.official"))


def _sparse_fcmae_checkpoint(dense: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official FCMAE checkpoint of a dense official ConvNeXt V2 layout: the encoder as
    ``SparseConvNeXtV2`` stores it (MinkowskiEngine tensors), plus the decoder's modules. Written
    as the inverse of the official ``remap_checkpoint_keys``."""
    out = {}
    for key, v in dense.items():
        if key.startswith(("norm.", "head.")):
            continue  # the pre-training encoder has no classifier
        parts = key.split(".")
        stem = key.startswith("downsample_layers.0.")
        if parts[-1] == "weight" and v.dim() == 4 and not stem:
            k = v.shape[-1]
            if v.shape[1] == 1:  # depthwise (C, 1, k, k) -> (k*k, C)
                v = v.transpose(3, 2).reshape(v.shape[0], k * k).permute(1, 0)
            else:  # (out, in, k, k) -> (k*k, in, out)
                v = v.transpose(3, 2).reshape(v.shape[0], v.shape[1], k * k).permute(2, 1, 0)
            key = ".".join([*parts[:-1], "kernel"])
        elif parts[-1] == "bias" and ("dwconv" in key or (not stem and parts[-2] == "1")):
            v = v.reshape(1, -1)  # a Minkowski convolution's bias
        elif ".grn." in key:
            v = v.reshape(1, -1)
        elif not stem and (".norm." in key or parts[-2] == "0"):
            key = ".".join([*parts[:-1], "ln", parts[-1]])
        elif ".pwconv" in key:
            key = ".".join([*parts[:-1], "linear", parts[-1]])
        out[f"encoder.{key}"] = v.contiguous()
    g = torch.Generator().manual_seed(1)
    for name, shape in (("mask_token", (1, 512, 1, 1)), ("proj.weight", (512, 320, 1, 1))):
        out[name] = torch.randn(shape, generator=g, dtype=torch.float64)
    out["decoder.0.pwconv1.weight"] = torch.randn(2048, 512, generator=g, dtype=torch.float64)
    out["pred.weight"] = torch.randn(3072, 512, 1, 1, generator=g, dtype=torch.float64)
    return out


def test_official_fcmae_sparse_checkpoints_load_the_encoder_exactly():
    """Minkowski kernels reshaped with the spatial axes transposed, GRN (1, C) -> (1, 1, 1, C),
    the decoder dropped by module (its `proj`/`pred` names would also match a substring filter)."""
    dense = _layout("convnextv2_atto.official")
    sparse = _sparse_fcmae_checkpoint(dense)
    assert sparse["encoder.stages.1.0.dwconv.kernel"].shape == (49, 80)
    assert sparse["encoder.downsample_layers.2.1.kernel"].shape == (4, 80, 160)
    assert sparse["encoder.stages.0.0.grn.gamma"].shape == (1, 160)
    c = nas.load_candidate(PRESETS / "convnextv2_atto.yaml")
    from_dense = nas.build_model(c).double()
    nas.load_weights(from_dense, dense)
    torch.manual_seed(3)
    model = nas.build_model(c).double()
    head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
    assert nas.load_weights(model, {"model": sparse}) == "convnextv2-fcmae"
    for k, v in model.state_dict().items():
        want = head[k] if k.startswith("head.") else from_dense.state_dict()[k]
        assert torch.equal(v, want), k  # the encoder exactly; the head as initialised


# ---------------------------------------------------------------------- weights out (timm)
@pytest.mark.parametrize(
    "preset, name",
    [("convnextv2_atto", "convnextv2_atto"), ("convnextv2_tiny", "convnextv2_tiny"),
     ("convnext_tiny", "convnext_tiny")],
)  # fmt: skip
def test_timm_export_gives_back_exactly_the_timm_layout(preset, name):
    from nas.models.timm_export import to_timm

    torch.manual_seed(0)
    model = nas.build_model(nas.load_candidate(PRESETS / f"{preset}.yaml"))
    state, spec = to_timm(model)
    layout = _layout(f"{name}.timm")
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        k: tuple(v.shape) for k, v in layout.items()
    }
    assert spec["model_name"] == name and spec["kwargs"]["num_classes"] == 1000
    back = nas.build_model(model.candidate)
    assert nas.load_weights(back, state) == "timm"  # and back again, every tensor equal
    for k, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


def test_timm_export_of_other_sizes_and_what_timm_cannot_build():
    from nas.models.timm_export import timm_spec

    small = nas.Candidate(depths=(1, 1, 2, 1), widths=(24, 48, 96, 192), num_classes=10)
    spec = timm_spec(small)
    assert spec["model_name"] == "convnextv2_tiny" and not spec["conv_mlp"]
    assert spec["kwargs"] == {
        "num_classes": 10, "in_chans": 3, "depths": [1, 1, 2, 1], "dims": [24, 48, 96, 192],
    }  # fmt: skip
    with pytest.raises(nas.UserError, match="timm export: block is 'replk'"):
        timm_spec(nas.load_candidate(PRESETS / "replknet_31b.yaml"))
    with pytest.raises(nas.UserError, match="mixers: timm's ConvNeXt needs static"):
        timm_spec(
            nas.Candidate.from_params({"stage.3.mixer": "dynamic", "head_dim": 32}, base=small)
        )
