"""Zero-cost proxies against hand-computed values on a tiny fixed network, the invariances their
papers state, and a failing proxy as NaN with its reason."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import nas
from nas.measure.proxies import PROXIES, zero_cost_proxies

W1 = np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0]])  # (3, 2)
W2 = np.array([[1.0, -0.5, 0.25], [-2.0, 0.75, 1.25]])  # (2, 3)
X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.3, -2.0], [2.0, 1.0]])
Y = np.array([0, 1, 1, 0])


def _net(act=nn.ReLU) -> nn.Module:
    net = nn.Sequential(nn.Linear(2, 3, bias=False), act(), nn.Linear(3, 2, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(W1))
        net[2].weight.copy_(torch.from_numpy(W2))
    return net


def _by_hand() -> dict[str, float]:
    pre = X @ W1.T  # (4, 3)
    h = np.maximum(pre, 0)
    z = h @ W2.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(2)[Y]) / len(X)  # mean cross-entropy
    g2 = dz.T @ h
    g1 = ((dz @ W2) * (pre > 0)).T @ X
    codes = (pre > 0).astype(float)
    k = codes @ codes.T + (1 - codes) @ (1 - codes).T
    r = np.ones(2) @ np.abs(W2) @ np.abs(W1) @ np.ones(2)  # all-ones input, |weights|
    return {
        "grad_norm": np.linalg.norm(g1) + np.linalg.norm(g2),
        "snip": np.abs(g1 * W1).sum() + np.abs(g2 * W2).sum(),
        "synflow": 2 * r,  # a two-layer positive linear net: each layer's sum is R
        "naswot": np.linalg.slogdet(k)[1],
    }


def test_each_proxy_equals_its_hand_computed_value():
    got = zero_cost_proxies(_net(), torch.from_numpy(X), torch.from_numpy(Y))
    want = _by_hand()
    assert got["proxy_errors"] == {}
    for name in PROXIES:
        assert got[name] == pytest.approx(want[name], rel=1e-12), name


def test_stated_invariances_and_the_model_is_left_alone():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    a = zero_cost_proxies(net, torch.from_numpy(X), torch.from_numpy(Y))
    other = torch.randn(4, 2, dtype=torch.float64) * 10
    b = zero_cost_proxies(net, other, torch.from_numpy(Y))
    assert a["synflow"] == b["synflow"]  # data-independent (all-ones input)
    perm = [2, 0, 3, 1]
    c = zero_cost_proxies(net, torch.from_numpy(X[perm]), torch.from_numpy(Y[perm]))
    assert c["naswot"] == pytest.approx(a["naswot"], rel=1e-12)  # the order of the images
    assert c["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-12)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_a_proxy_that_cannot_run_is_nan_with_its_reason():
    got = zero_cost_proxies(_net(nn.Identity), torch.from_numpy(X), torch.from_numpy(Y))
    assert math.isnan(got["naswot"]) and "no GELU or ReLU" in got["proxy_errors"]["naswot"]
    assert math.isfinite(got["synflow"]) and set(got["proxy_errors"]) == {"naswot"}


def test_proxies_run_on_every_block_style_and_are_deterministic():
    images, labels = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    for block in ("convnext", "replk", "container"):
        torch.manual_seed(0)
        c = nas.Candidate(
            block=block, depths=(1, 1, 1, 1), widths=(16, 32, 32, 32), image_size=32,
            num_classes=10, head_dim=16, mixers=("static", "static", "mixed", "dynamic"),
        )  # fmt: skip
        model = nas.build_model(c)
        a = zero_cost_proxies(model, images, labels)
        b = zero_cost_proxies(model, images, labels)
        assert a == b and a["proxy_errors"] == {}, (block, a["proxy_errors"])
        assert all(math.isfinite(a[p]) for p in ("grad_norm", "snip", "naswot")), (block, a)


def test_nas_measure_proxies_adds_the_columns(capsys):
    import json

    from nas.cli.main import main
    from tests.conftest import PRESETS

    preset = str(PRESETS / "quickstart_base.yaml")
    assert main(["measure", preset, "--no-latency", "--proxies", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["proxy_errors"] is None and all(math.isfinite(row[p]) for p in PROXIES)
    assert main(["measure", preset, "--no-latency", "--proxies", "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert all(again[p] == row[p] for p in PROXIES)  # deterministic for a fixed seed
