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
    return {k: torch.randn(tuple(shape), generator=g, dtype=torch.float64) for k, shape in items}


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
    ],
)  # fmt: skip
def test_published_layouts_load_strictly_and_every_tensor_lands(layout, preset, fmt, probes):
    weights = _layout(layout)
    model = nas.build_model(nas.load_candidate(PRESETS / f"{preset}.yaml")).double()
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
