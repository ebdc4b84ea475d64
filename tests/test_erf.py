"""Effective receptive field: exact on a stack of box filters, equal for training and deploy
forms, larger for larger kernels, and the ratios by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import nas
from nas.measure.erf import erf_map, erf_ratios


class BoxStack(nn.Module):
    """L depthwise K x K convolutions with every weight 1/K^2, no bias, no nonlinearity."""

    def __init__(self, channels: int, kernel: int, layers: int):
        super().__init__()
        self.convs = nn.Sequential(
            *(
                nn.Conv2d(
                    channels,
                    channels,
                    kernel,
                    padding=kernel // 2,
                    groups=channels,
                    bias=False,
                    dtype=torch.float64,
                )
                for _ in range(layers)
            )
        )
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.fill_(1.0 / kernel**2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


def _box_power(size: int, kernel: int, layers: int) -> np.ndarray:
    """The L-fold convolution of the box, centred in a size x size map (numpy, independently)."""
    out = np.zeros((size, size))
    out[size // 2, size // 2] = 1.0
    box = np.full((kernel, kernel), 1.0 / kernel**2)
    r = kernel // 2
    for _ in range(layers):
        padded = np.pad(out, r)
        out = sum(
            box[i, j] * padded[i : i + size, j : j + size]
            for i in range(kernel)
            for j in range(kernel)
        )
    return out


def test_box_stack_erf_is_the_l_fold_box_convolution_exactly():
    model = BoxStack(channels=2, kernel=5, layers=3)
    images = torch.randn(4, 2, 33, 33, dtype=torch.float64)
    m = erf_map(model, images).numpy()
    want = 2 * _box_power(33, 5, 3)  # summed over the 2 input channels
    np.testing.assert_allclose(m, want, rtol=0, atol=1e-15)
    # the ratios follow from the map: the support is 13 x 13 (3 layers of radius 2)
    r = erf_ratios(torch.from_numpy(m))
    assert r["erf_r99"] <= 13 * 13 / 33**2
    total, ratios = want.sum(), {}
    for t in (0.2, 0.3, 0.5, 0.99):  # by hand: grow the centred square until it holds t
        for half in range(17):
            if want[16 - half : 17 + half, 16 - half : 17 + half].sum() >= t * total * (1 - 1e-12):
                ratios[f"erf_r{round(100 * t)}"] = (2 * half + 1) ** 2 / 33**2
                break
    assert r == pytest.approx(ratios, rel=1e-12)
    assert r["erf_r20"] <= r["erf_r30"] <= r["erf_r50"] < r["erf_r99"]


def test_larger_kernels_have_a_larger_erf_at_init():
    """A stack of 4 depthwise convolutions at PyTorch's default init, kernel 31 against 3."""
    images = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    ratios = {}
    for k in (3, 31):
        torch.manual_seed(0)
        model = BoxStack(channels=3, kernel=k, layers=4)
        for conv in model.convs:
            conv.reset_parameters()  # random, not boxes
        ratios[k] = erf_ratios(erf_map(model, images))
    assert ratios[31]["erf_r20"] > 4 * ratios[3]["erf_r20"]


def test_training_and_deploy_forms_have_the_same_erf():
    torch.manual_seed(0)
    c = nas.Candidate(
        block="replk", depths=(1, 1, 1, 1), widths=(16, 32, 32, 32), kernels=(13, 9, 7, 5),
        small_kernels=(3, 3, 3, 3), image_size=64, num_classes=10,
    )  # fmt: skip
    from tests.conftest import randomize_for_equivalence

    model = randomize_for_equivalence(nas.build_model(c)).eval()
    deploy = nas.reparameterize(model)
    images = torch.randn(2, 3, 64, 64)
    a, b = erf_map(model, images), erf_map(deploy, images)
    assert (a - b).abs().max() <= 1e-5 * a.abs().max()


def test_an_empty_map_has_no_ratio():
    assert all(np.isnan(v) for v in erf_ratios(torch.zeros(8, 8)).values())


def test_nas_erf_prints_the_ratios_and_writes_the_map(tmp_path, capsys):
    from nas.cli.main import main
    from tests.conftest import PRESETS

    out = tmp_path / "map.png"
    preset = str(PRESETS / "quickstart_base.yaml")
    code = main(["erf", preset, "--images", "2", "--image-size", "32", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    values = dict(kv.split("=") for kv in text.splitlines()[1].split())
    assert set(values) == {"erf_r20", "erf_r30", "erf_r50", "erf_r99"}
    assert 0 < float(values["erf_r20"]) <= float(values["erf_r99"]) <= 1
    assert out.read_bytes().startswith(b"\x89PNG")
    code = main(["erf", preset, "--images", "2", "--weights", str(tmp_path / "none.pt")])
    assert code == 2 and f"{tmp_path / 'none.pt'}: no such file" in capsys.readouterr().err
    missing = tmp_path / "no-cifar"
    code = main(["erf", preset, "--dataset", "cifar10", "--data-path", str(missing)])
    err = capsys.readouterr().err
    assert code == 2 and str(missing) in err and err.count("\n") == 1, err


def test_nas_erf_and_pretrain_refuse_an_unwritable_out_before_any_work(tmp_path, capsys):
    from nas.cli.main import main
    from tests.conftest import PRESETS

    preset = str(PRESETS / "quickstart_base.yaml")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for argv in (["erf", preset, "--out", str(blocker / "map.png")],
                 ["pretrain", preset, "--epochs", "1", "--patch", "8",
                  "--out", str(blocker / "sub" / "w.pt")],
                 ["erf", preset, "--out", str(tmp_path)]):  # fmt: skip
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and "--out: " in err and "Traceback" not in err, err
        assert out == ""  # refused before anything ran or printed
    assert blocker.read_text() == "x"
