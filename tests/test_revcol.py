"""RevCol: reversible gradients equal ordinary autograd, activation memory independent of the
column count, drop-path RNG replay, intermediate supervision for any column count."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import nas
from nas.measure.memory import saved_bytes
from nas.models.revcol import ALPHA_MIN, aux_columns, aux_loss_weights, revcol_loss
from tests.conftest import randomize_for_equivalence

STYLES = {  # block style -> candidate fields (RevCol puts LayerScale on every block)
    "convnext_v1": dict(block="convnext", grn=False, layer_scale=1e-6),
    "convnext_v2": dict(block="convnext", grn=True, layer_scale=1e-6),
    "replk": dict(block="replk", grn=False, layer_scale=1e-6, small_kernels=(1, 3, 1, 1)),
    "container": dict(
        block="container",
        grn=False,
        layer_scale=1e-6,
        mixers=("static", "mixed", "dynamic", "static"),
    ),
}


def revcol(columns: int, style: str, *, reversible: bool = True, **kw) -> nas.Candidate:
    fields = dict(
        macro="revcol",
        columns=columns,
        reversible=reversible,
        depths=(1, 1, 1, 1),
        widths=(8, 16, 32, 32),
        kernels=(3, 5, 3, 3),
        head_dim=8,
        num_classes=5,
        image_size=64,
    )
    fields.update(STYLES[style])
    fields.update(kw)
    return nas.Candidate(**fields)


def grads(model, x, y, seed=0):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = model(x)
    F.cross_entropy(out, y).backward()
    return out.detach(), {
        n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
    }


def rel_error(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    va = torch.cat([a[k].flatten() for k in sorted(a)])
    vb = torch.cat([b[k].flatten() for k in sorted(b)])
    return ((va - vb).norm() / vb.norm()).item()


@pytest.mark.parametrize(
    "dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)], ids=["fp64", "fp32"]
)
@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("columns", [1, 2, 4, 8])
@pytest.mark.parametrize("alpha", ["bounded", "official"])
def test_reversible_gradients_equal_autograd(columns, style, dtype, tol, alpha):
    torch.manual_seed(0)
    model = nas.build_model(revcol(columns, style, revcol_alpha=alpha)).to(dtype)
    randomize_for_equivalence(model)  # LayerScale/GRN/gates ~0.4: every block matters
    x = torch.randn(8, 3, 64, 64, dtype=dtype)
    y = torch.arange(8) % 5
    out_rev, g_rev = grads(model, x, y)
    model.reversible = False
    out_ref, g_ref = grads(model, x, y)
    torch.testing.assert_close(
        out_rev, out_ref, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=1e-5
    )
    assert rel_error(g_rev, g_ref) <= tol


def test_drop_path_masks_replayed_in_backward():
    torch.manual_seed(0)
    model = nas.build_model(revcol(4, "convnext_v1", drop_path=0.3, depths=(2, 2, 2, 2)))
    randomize_for_equivalence(model)
    x, y = torch.randn(8, 3, 64, 64), torch.arange(8) % 5
    _, g_rev = grads(model, x, y, seed=123)
    model.reversible = False
    _, g_ref = grads(model, x, y, seed=123)
    assert rel_error(g_rev, g_ref) <= 1e-4
    _, g_other = grads(model, x, y, seed=124)  # other masks: clearly other gradients
    assert rel_error(g_other, g_ref) > 1e-3


def test_batchnorm_statistics_updated_once_per_step():
    model_rev = nas.build_model(revcol(2, "replk"))
    model_ref = nas.build_model(revcol(2, "replk", reversible=False))
    model_ref.load_state_dict(model_rev.state_dict())
    x, y = torch.randn(8, 3, 64, 64), torch.arange(8) % 5
    grads(model_rev, x, y)
    grads(model_ref, x, y)
    for (name, a), b in zip(model_rev.named_buffers(), model_ref.buffers()):
        torch.testing.assert_close(a, b, msg=name)


def test_saved_bytes_independent_of_columns():
    def measure(columns: int, reversible: bool) -> int:
        c = nas.Candidate(
            macro="revcol",
            columns=columns,
            reversible=reversible,
            depths=(1, 1, 2, 1),
            widths=(16, 32, 64, 128),
            kernels=(3, 3, 3, 3),
            grn=False,
            layer_scale=1e-6,
            num_classes=10,
            image_size=64,
        )
        return saved_bytes(nas.build_model(c), torch.randn(4, 3, 64, 64))

    rev = {n: measure(n, True) for n in (2, 8)}
    assert rev[8] <= 1.10 * rev[2]  # growth from 2 to 8 columns at most 10%
    assert rev[8] <= 0.1 * measure(8, False)


def test_reversible_four_columns_trains():
    torch.manual_seed(0)
    model = nas.build_model(revcol(4, "convnext_v2"))
    x, y = torch.randn(16, 3, 64, 64), torch.arange(16) % 5
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(50):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("columns", range(1, 11))
def test_intermediate_supervision_any_column_count(columns):
    heads = aux_columns(columns)
    assert (
        heads[-1] == columns - 1 and len(heads) == min(4, columns) and heads == sorted(set(heads))
    )
    c = revcol(columns, "convnext_v1", inter_supervision=columns > 1)
    model = nas.build_model(c)
    x = torch.randn(2, 3, 64, 64)
    logits, recons = model.forward_aux(x)
    assert len(logits) == len(heads) and len(recons) == len(heads) - 1
    assert all(z.shape == (2, 5) for z in logits) and all(r.shape == x.shape for r in recons)
    loss = revcol_loss(logits, recons, torch.tensor([0, 1]), x)
    loss.backward()
    assert torch.isfinite(loss)
    deploy = nas.reparameterize(model)
    assert deploy.aux_heads is None and deploy.decoders is None
    assert (
        sum(p.numel() for p in deploy.parameters()) < sum(p.numel() for p in model.parameters())
        or columns == 1
    )


def test_paper_loss_weights():
    ce, rec = aux_loss_weights(4)
    assert ce == pytest.approx([0.175, 0.35, 0.525, 1.0])
    assert rec == pytest.approx([3.0, 2.0, 1.0])


def test_alpha_floor():
    model = nas.build_model(revcol(2, "convnext_v1"))
    column = model.columns[1]
    assert torch.allclose(column.alpha(0), torch.full_like(column.alpha(0), 0.5))
    with torch.no_grad():
        column.alpha_theta[0].fill_(-1e4)
    assert column.alpha(0).min().item() >= ALPHA_MIN


def test_revcol_reparameterize_equivalence():
    torch.manual_seed(0)
    model = randomize_for_equivalence(nas.build_model(revcol(3, "replk"))).eval()
    deploy = nas.reparameterize(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(deploy(x), model(x), atol=1e-4, rtol=1e-4)


def test_columns_and_reversible_switch_a_preset():
    from tests.conftest import PRESETS

    base = nas.load_candidate(PRESETS / "revcol_t.yaml")
    other = nas.Candidate.from_params({"columns": 2, "reversible": False}, base=base)
    assert (other.columns, other.reversible) == (2, False)
    assert other.id != base.id


@pytest.mark.parametrize("columns", [2, 3])
@pytest.mark.parametrize("value, used", [(-0.1, -0.1), (1e-4, 1e-3), (-1e-4, -1e-3), (0.7, 0.7)])
def test_official_alpha_keeps_its_sign_clamps_its_size_and_stays_exact(value, used, columns):
    """revcol_alpha: official is the official code's raw alpha: |alpha| >= 1e-3 in the forward,
    sign kept; the forward is alpha * c_prev + F exactly, and the reversible gradients (alpha
    gradients included) equal autograd's in float64: to the existing 1e-10 with 2 columns; with
    3, one more reconstruction divides the rounding of c - F by |alpha| once more (about
    eps * |F| / alpha^2 = 1e-16 * 1e6 at alpha = 1e-3), so the bound there is 1e-8."""
    torch.manual_seed(0)
    model = nas.build_model(revcol(columns, "convnext_v2", revcol_alpha="official")).double()
    randomize_for_equivalence(model)
    with torch.no_grad():
        for column in model.columns:
            column.alphas[1].fill_(value)
    x = torch.randn(4, 3, 64, 64, dtype=torch.float64)
    y = torch.arange(4) % 5
    out_rev, g_rev = grads(model, x, y)
    last = columns - 1
    assert torch.all(model.columns[last].alphas[1] == used)  # clamped in place, as officially
    model.reversible = False
    out_ref, g_ref = grads(model, x, y)
    torch.testing.assert_close(out_rev, out_ref, atol=1e-12, rtol=1e-9)
    small = columns > 2 and abs(used) < 0.01
    assert rel_error(g_rev, g_ref) <= (1e-8 if small else 1e-10)
    assert g_rev[f"columns.{last}.alphas.1"].abs().sum() > 0
    # the formula, by hand, for column 2 level 1 (non-reversible path)
    column = model.columns[1]
    stem = model.stem(x)
    c1 = model.columns[0](stem, None)
    c2 = column(stem, c1)
    f = column.level_out(1, c2[0], c1)
    torch.testing.assert_close(c2[1], used * c1[1] + f, atol=0, rtol=0)


def test_official_alpha_is_decayed_by_the_optimizer_and_the_bounded_one_is_not():
    from nas.train import param_groups

    for mode, decayed in (("official", True), ("bounded", False)):
        model = nas.build_model(revcol(2, "convnext_v1", revcol_alpha=mode))
        decay = {id(p) for p in param_groups(model, 0.05)[0]["params"]}
        name = "alphas" if mode == "official" else "alpha_theta"
        alpha = getattr(model.columns[1], name)[0]
        assert (id(alpha) in decay) is decayed, mode


def test_revcol_alpha_is_a_candidate_field_that_keeps_earlier_ids():
    bounded = revcol(2, "convnext_v1")
    official = nas.Candidate.from_params({"revcol_alpha": "official"}, base=bounded)
    assert official.id != bounded.id and '"revcol_alpha"' not in bounded.to_json()
    assert nas.Candidate.from_params({"macro": "plain"}, base=official).revcol_alpha == "bounded"
    with pytest.raises(nas.CandidateError, match="revcol_alpha"):
        nas.Candidate.from_params({"revcol_alpha": "free"}, base=bounded)


def test_levels_find_their_buffers_again_after_reparameterization():
    """The reversible backward snapshots each level's buffers from modules found once per level;
    the deploy copy drops BN branches, and its levels look them up again (no stale buffers)."""
    from nas.models.build import reparameterize

    model = nas.build_model(revcol(2, "replk"))
    x, y = torch.randn(4, 3, 64, 64), torch.arange(4) % 5
    grads(model, x, y)  # the reversible backward found the levels' modules
    for level in model.columns[1].levels:
        assert {id(b) for b in level.buffers_now()} == {id(b) for b in level.buffers()}
    deploy = reparameterize(model)
    for level in deploy.columns[1].levels:
        assert {id(b) for b in level.buffers_now()} == {id(b) for b in level.buffers()}
    assert len(deploy.columns[1].levels[0].buffers_now()) < len(
        model.columns[1].levels[0].buffers_now()
    )
