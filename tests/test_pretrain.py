"""FCMAE pre-training: the encoder keeps the mask exactly for every block style and macro, the
loss is over masked patches only, pre-training lowers it, and the encoder loads into the
candidate's own network."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import nas
from nas.errors import SpaceError
from nas.pretrain import FCMAE, check_fcmae
from nas.space.candidate import Candidate
from tests.conftest import PRESETS, QUICK_LATENCY, kill_driver, nas_process

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


# ---------------------------------------------------------------------- the loop and the CLI
def _run(capsys, *argv) -> tuple[int, str, str]:
    from nas.cli.main import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_pretraining_lowers_the_masked_loss_and_fine_tuning_loads_every_encoder_tensor(
    tmp_path, capsys
):
    weights = tmp_path / "enc.pt"
    base = str(PRESETS / "quickstart_base.yaml")
    common = ["--dataset", "digits", "--batch-size", "64"]
    code, out, _ = _run(
        capsys, "pretrain", base, "--epochs", "4", "--patch", "8", "--decoder-dim", "64",
        "--out", str(weights), *common,
    )  # fmt: skip
    assert code == 0, out
    val = [float(x) for x in re.findall(r"  pretrain_val_loss=([0-9.]+)", out)]
    (init,) = re.findall(r"before pre-training: pretrain_val_loss=([0-9.]+)", out)
    assert len(val) == 4 and val[-1] < val[0] < 0.8 * float(init), out
    assert f"encoder weights: {weights}" in out
    state = torch.load(weights, weights_only=True)
    model = nas.build_model(
        Candidate.from_params({"num_classes": 10, "image_size": 32}, base=nas.load_candidate(base))
    )
    from nas.cli.training import load_encoder

    load_encoder(model, str(weights))
    for k, v in model.state_dict().items():  # every tensor came from the file
        assert torch.equal(v, state["encoder"][k]), k
    code, out, _ = _run(capsys, "train", base, "--epochs", "1", "--init", str(weights), *common)
    assert code == 0 and "every encoder tensor loaded" in out and "status=ok" in out, out


def test_init_from_weights_of_another_structure_is_one_line(tmp_path, capsys):
    weights = tmp_path / "enc.pt"
    atto = str(PRESETS / "convnextv2_atto.yaml")
    code, out, _ = _run(
        capsys, "pretrain", atto, "--epochs", "1", "--patch", "8", "--decoder-dim", "16",
        "--out", str(weights), "--dataset", "synthetic",
    )  # fmt: skip
    assert code == 0, out
    other = str(PRESETS / "quickstart_base.yaml")
    code, _, err = _run(capsys, "train", other, "--epochs", "1", "--init", str(weights))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--init {weights}: not this network's structure: unexpected " in err
    assert "shape mismatch stem.0.weight (40, 3, 4, 4) in the file, (24, 3, 4, 4) here" in err
    assert "more" in err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    code, _, err = _run(capsys, "train", other, "--epochs", "1", "--init", str(junk))
    assert code == 2 and f"--init {junk}: not a weights file torch can read" in err, err
    code, _, err = _run(capsys, "pretrain", other, "--patch", "12")
    assert code == 2 and "flags: pretrain.patch: expected a divisor of image_size 32, got 12" in err


# ---------------------------------------------------------------------- spaces
def test_pretrain_section_and_dimensions_in_a_space(tmp_path):
    from nas.space import load_space

    path = tmp_path / "s.yaml"
    path.write_text(
        "base: " + str(PRESETS / "quickstart_base.yaml") + "\n"
        "data: {dataset: digits, image_size: 32}\n"
        "pretrain: {epochs: 2, patch: 8}\n"
        "space:\n  grn: {choice: [true, false]}\n"
        "  pretrain:\n    method: {choice: [none, fcmae]}\n    mask_ratio: {choice: [0.5, 0.75]}\n"
    )
    space = load_space(path)
    assert space.pretrain == {"epochs": 2, "patch": 8}
    samples, _ = space.sample_distinct(8, np.random.default_rng(0))
    methods = {s.pretrain["method"] for s in samples}
    assert methods == {"none", "fcmae"} and all("mask_ratio" in s.pretrain for s in samples)
    assert len({s.id for s in samples}) == len(samples)


@pytest.mark.parametrize(
    "text, message",
    [
        ("pretrain: {method: mae}", "pretrain.method: expected one of ['none', 'fcmae'], got 'mae'"),
        ("pretrain: {epoch: 3}", "pretrain.epoch: unknown key (did you mean 'epochs'?)"),
        ("pretrain: {mask_ratio: 1.0}", "pretrain.mask_ratio: expected a fraction in (0, 1), got 1.0"),
        ("pretrain: {method: fcmae, patch: 12}", "pretrain.patch: expected a divisor of image_size 32, got 12"),
        ("pretrain: {method: fcmae}", "pretrain.mask_ratio: 0.6 over 1x1 patches of 32 px leaves no patch visible"),
        ("space: {pretrain: {methods: {choice: [none]}}}", "space.pretrain.methods: unknown pre-training setting (did you mean 'method'?)"),
        ("space: {pretrain: {decoder_dim: {choice: [0, 8]}}}", "space.pretrain.decoder_dim: expected an integer >= 1, got 0"),
    ],
)  # fmt: skip
def test_bad_pretrain_settings_are_one_line(tmp_path, text, message):
    from nas.space import load_space

    path = tmp_path / "s.yaml"
    path.write_text(
        f"base: {PRESETS / 'quickstart_base.yaml'}\ndata: {{dataset: digits, image_size: 32}}\n{text}\n"
    )
    with pytest.raises(SpaceError) as e:
        load_space(path)
    assert str(e.value) == f"{path}: {message}" or message in str(e.value), str(e.value)
    assert str(path) in str(e.value)


# ---------------------------------------------------------------------- campaigns (real local Ray)
CAMPAIGN_SPACE = f"""
name: pre
base: {PRESETS / "quickstart_base.yaml"}
data: {{dataset: synthetic, image_size: 32, limit: 384}}
train: {{epochs: 1, batch_size: 32}}
pretrain: {{epochs: EPOCHS, patch: 8, decoder_dim: 32}}
objectives: {{val_acc: max}}
space:
  grn: {{choice: [true, false]}}
  pretrain:
    method: {{choice: [none, fcmae]}}
"""
CAMPAIGN_RUNNER = f"""
name: test
cpus_per_trial: 1
max_concurrent: 1
object_store_mb: 128
latency: {{mode: serial, {QUICK_LATENCY}}}
"""


def _campaign_files(tmp_path, epochs: int):
    space, runner = tmp_path / "space.yaml", tmp_path / "runner.yaml"
    space.write_text(CAMPAIGN_SPACE.replace("EPOCHS", str(epochs)))
    runner.write_text(CAMPAIGN_RUNNER)
    return space, runner


@pytest.mark.heavy
def test_an_ablation_over_pretrain_method_runs_and_rows_carry_the_pretraining(tmp_path):
    from nas.campaign.table import read_table

    space, runner = _campaign_files(tmp_path, epochs=2)
    proc = nas_process(
        "ablate", str(space), "--runner", str(runner), "--name", "abl", "--results",
        str(tmp_path), "--axes", "pretrain.method", "--seeds", "1",
    )  # fmt: skip
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    df = read_table(tmp_path / "abl")
    assert len(df) == 2 and (df["status"] == "ok").all(), df[["status", "reason"]]
    pre = df[df["pretrain.method"] == "fcmae"].iloc[0]
    none = df[df["pretrain.method"] == "none"].iloc[0]
    assert none["axis"] == "baseline" and pre["axis"] == "pretrain.method"
    assert pre["pretrain.epochs"] == 2 and pre["pretrain.patch"] == 8 and pre["pretrain_epoch"] == 2
    assert pre["pretrain_loss"] > 0 and pre["pretrain_s"] > 0 and pre["train_s"] > 0
    assert pre["pretrain_val_loss"] < pre["pretrain_val_loss_init"]
    assert pre["pretrain_resumed_at"] == 0 and pre["epochs"] == 1
    assert pd_isna(none.get("pretrain_loss")) and pre["run_key"] != none["run_key"]


def pd_isna(value) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


@pytest.mark.heavy
def test_a_campaign_killed_during_pretraining_resumes_from_the_pretraining_checkpoint(tmp_path):
    import time

    from nas.campaign.table import read_table

    space, runner = _campaign_files(tmp_path, epochs=40)
    text = space.read_text().replace("method: {choice: [none, fcmae]}", "method: fcmae")
    text = text.replace("limit: 384", "limit: 640")
    space.write_text(text.replace("grn: {choice: [true, false]}", "grn: true"))
    folder = tmp_path / "k"
    proc = nas_process(
        "survey", str(space), "--runner", str(runner), "--name", "k", "-n", "1",
        "--results", str(tmp_path), start_new_session=True,
    )  # fmt: skip
    # Tune keeps every checkpoint until the run ends, and writes its experiment state (which
    # names the latest checkpoint) every 2 s: wait until a few epochs are checkpointed
    deadline = time.time() + 300
    while time.time() < deadline and len(list(folder.rglob("checkpoint_*/pretrain.pt"))) < 5:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.2)
    assert len(list(folder.rglob("checkpoint_*/pretrain.pt"))) >= 5, "no pre-training checkpoints"
    kill_driver(proc)
    assert not list(folder.rglob("checkpoint_*/train.pt")), "killed after pre-training ended"
    resumed = nas_process("resume", str(folder))
    out, _ = resumed.communicate(timeout=420)
    assert resumed.returncode == 0, out[-3000:]
    (row,) = read_table(folder).to_dict("records")
    assert row["status"] == "ok", row
    assert 1 <= row["pretrain_resumed_at"] < 40  # continued from an epoch's checkpoint
    assert row["pretrain_epoch"] == 40 and row["epochs"] == 1
    # the loss before the first step, measured by the killed run, survives the resume
    assert row["pretrain_val_loss"] < row["pretrain_val_loss_init"] < 10


def test_a_resumed_pretraining_keeps_the_loss_before_the_first_step(tmp_path):
    """The validation loss before any step is carried in every epoch's row (and so in the
    checkpoint): a run resumed from the checkpoint reports the same reference."""
    from nas.pretrain.loop import PretrainConfig, build_fcmae, pretrain
    from nas.train.config import DataConfig
    from nas.train.data import load_data
    from nas.train.trainer import TrainConfig

    c = Candidate.from_params(
        {"width": 8, "depths": [1, 1, 1, 1], "image_size": 32, "num_classes": 10},
        base=nas.load_candidate(PRESETS / "convnextv2_atto.yaml"),
    )
    data = load_data(DataConfig(dataset="synthetic", image_size=32, limit=128))
    train = TrainConfig(batch_size=32, device="cpu", seed=0)
    ckpt = tmp_path / "pretrain.pt"

    def run(epochs: int):
        pre = PretrainConfig(method="fcmae", epochs=epochs, patch=8, decoder_dim=16)
        torch.manual_seed(0)
        return pretrain(build_fcmae(c, pre), data, pre, train, checkpoint=ckpt)

    first = run(1)
    assert first.start_epoch == 0 and math.isfinite(first.initial_val_loss)
    resumed = run(2)
    assert resumed.start_epoch == 1 and len(resumed.history) == 2
    assert resumed.initial_val_loss == first.initial_val_loss
    assert resumed.history[-1]["pretrain_val_loss_init"] == first.initial_val_loss
