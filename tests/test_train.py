"""nas.train: LR schedule, no-decay groups, reproducibility, divergence, reports, checkpoint and
resume, RevCol intermediate supervision, real learning on digits; nas.bench.trainer runs."""

from __future__ import annotations

import math

import pytest
import torch

import nas
from nas.errors import UserError
from nas.train import REPORT_KEYS, TrainConfig, lr_at, param_groups, train
from nas.train.data import DataConfig, load_data

TINY = nas.Candidate(depths=(1, 1, 1, 1), widths=(8, 16, 32, 64), num_classes=10, image_size=32)
TIMING = ("epoch_s", "images_per_s")


@pytest.fixture(scope="module")
def synthetic():
    return load_data(DataConfig(dataset="synthetic", limit=160))  # 130 train / 30 val


def tiny_model(candidate: nas.Candidate = TINY, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return nas.build_model(candidate)


def fast(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 32, **kw})


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


# ---------------------------------------------------------------------- schedule and groups
def test_lr_at_warmup_peak_cosine_end():
    kw = dict(total_steps=100, warmup_steps=10, lr=1e-3, min_lr=1e-5)
    assert lr_at(0, **kw) == pytest.approx(1e-4)  # warm-up starts at lr / warmup_steps
    assert lr_at(9, **kw) == pytest.approx(1e-3)
    assert lr_at(10, **kw) == pytest.approx(1e-3)  # peak
    assert lr_at(99, **kw) == pytest.approx(1e-5)  # end = min_lr
    assert lr_at(500, **kw) == pytest.approx(1e-5)
    warm = [lr_at(s, **kw) for s in range(10)]
    decay = [lr_at(s, **kw) for s in range(10, 100)]
    assert all(a < b for a, b in zip(warm, warm[1:]))
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert lr_at(55, **kw) == pytest.approx((1e-3 + 1e-5) / 2, rel=0.05)  # cosine midpoint
    assert lr_at(0, total_steps=5, warmup_steps=0, lr=1.0, min_lr=0.0) == 1.0


@pytest.mark.parametrize(
    "candidate",
    [
        TINY,
        nas.Candidate(
            macro="revcol",
            columns=2,
            depths=(1, 1, 1, 1),
            widths=(8, 16, 32, 32),
            layer_scale=1e-6,
            inter_supervision=True,
            num_classes=10,
            image_size=32,
        ),
        nas.Candidate(
            block="replk",
            depths=(1, 1, 1, 1),
            widths=(8, 16, 32, 64),
            kernels=(7, 7, 5, 3),
            small_kernels=(3, 3, 3, 1),
            mixers=("static", "mixed", "dynamic", "static"),
            head_dim=8,
            layer_scale=1e-6,
            num_classes=10,
            image_size=32,
        ),
    ],
    ids=["convnext", "revcol", "replk_mixed"],
)
def test_param_groups_no_decay_on_vectors(candidate):
    model = nas.build_model(candidate)
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    no_ids = {id(p) for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_ids) == len(list(model.parameters()))
    for name, p in model.named_parameters():
        vector = p.ndim <= 1 or "alpha_theta" in name or ".grn." in name or name.endswith(".gate")
        if vector:
            assert id(p) in no_ids, name
        if p.ndim == 2 and min(p.shape) > 1:  # Linear weights decay
            assert id(p) not in no_ids, name
    if candidate.macro == "revcol":
        assert any("alpha_theta" in n for n, p in model.named_parameters() if id(p) in no_ids)


# ---------------------------------------------------------------------- the loop
def test_same_seed_same_history_and_report_keys(synthetic):
    reports: list[dict] = []
    a = train(tiny_model(), synthetic, fast(), report=reports.append)
    b = train(tiny_model(), synthetic, fast())
    assert a.status == "ok" and a.reason == "" and a.epochs_done == 2
    assert without_timing(a.history) == without_timing(b.history)
    assert len(reports) == 2 and all(set(r) == set(REPORT_KEYS) for r in reports)
    assert [r["epoch"] for r in reports] == [1, 2]
    assert all(0.0 <= r["val_acc"] <= 1.0 and math.isfinite(r["train_loss"]) for r in reports)
    assert a.metrics["val_acc"] == a.history[-1]["val_acc"] and "best_val_acc" in a.metrics
    assert a.history[-1]["lr"] == pytest.approx(1e-5)  # ends at min_lr
    c = train(tiny_model(), synthetic, fast(seed=1))
    assert without_timing(c.history) != without_timing(a.history)


def test_divergence_is_a_status_not_an_exception(synthetic):
    reports: list[dict] = []
    result = train(tiny_model(), synthetic, fast(lr=1e4, epochs=3), report=reports.append)
    assert result.status == "diverged"
    assert "nan" in result.reason or "inf" in result.reason
    assert result.reason.startswith("loss became") and "epoch 1" in result.reason
    assert result.epochs_done == len(result.history) == len(reports) == 0


def test_checkpoint_resume_runs_only_the_remaining_epochs(synthetic, tmp_path):
    ckpt = tmp_path / "run" / "ckpt.pt"
    first = train(tiny_model(), synthetic, fast(epochs=2), checkpoint=ckpt)
    assert ckpt.is_file() and not ckpt.with_name("ckpt.pt.tmp").exists()
    reports: list[dict] = []
    second = train(
        tiny_model(seed=7), synthetic, fast(epochs=3), report=reports.append, checkpoint=ckpt
    )
    assert [r["epoch"] for r in reports] == [3]
    assert second.epochs_done == 3 and len(second.history) == 3
    assert second.history[:2] == first.history


@pytest.mark.parametrize("content", [b"", b"garbage", "other_model"])
def test_bad_checkpoint_is_a_user_error(synthetic, tmp_path, content):
    ckpt = tmp_path / "ckpt.pt"
    if content == "other_model":
        other = nas.Candidate(
            depths=(1, 1, 1, 1), widths=(8, 16, 32, 32), num_classes=10, image_size=32
        )
        train(tiny_model(other), synthetic, fast(epochs=1), checkpoint=ckpt)
    else:
        ckpt.write_bytes(content)
    with pytest.raises(
        UserError, match=r"^checkpoint: .*ckpt\.pt is not a checkpoint of this model"
    ):
        train(tiny_model(), synthetic, fast(), checkpoint=ckpt)


def test_resume_equals_an_uninterrupted_run(synthetic, tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    full = train(tiny_model(), synthetic, fast(epochs=3))

    def crash_after_two(row: dict) -> None:
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), synthetic, fast(epochs=3), report=crash_after_two, checkpoint=ckpt)
    resumed = train(tiny_model(seed=3), synthetic, fast(epochs=3), checkpoint=ckpt)
    assert without_timing(resumed.history) == without_timing(full.history)


def test_revcol_intermediate_supervision_trains(synthetic):
    c = nas.Candidate(
        macro="revcol",
        columns=2,
        reversible=True,
        inter_supervision=True,
        depths=(1, 1, 1, 1),
        widths=(8, 16, 32, 32),
        kernels=(3, 3, 3, 3),
        layer_scale=1e-6,
        num_classes=10,
        image_size=32,
    )
    model = tiny_model(c)
    assert model.aux_at
    result = train(model, synthetic, fast(epochs=1))
    assert result.status == "ok" and math.isfinite(result.history[0]["train_loss"])
    # the compound loss is larger than a plain CE run's (aux CE + reconstruction BCE)
    plain = train(tiny_model(c), synthetic, fast(epochs=1, aux_weight=0.0))
    assert result.history[0]["train_loss"] > plain.history[0]["train_loss"]


def test_learns_digits():
    data = load_data(DataConfig(dataset="digits", image_size=16, limit=900))
    c = nas.Candidate(
        depths=(1, 1, 1),
        widths=(16, 32, 64),
        kernels=(3, 3, 3),
        small_kernels=(0, 0, 0),
        mixers=("static",) * 3,
        mlp_ratios=(2.0, 2.0, 2.0),
        num_classes=10,
        image_size=16,
    )
    result = train(tiny_model(c), data, TrainConfig(epochs=4, batch_size=32, lr=4e-3))
    assert result.status == "ok" and result.metrics["val_acc"] > 0.5, result.history


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "d, match",
    [
        ({"epoch": 3}, r"^train\.epoch: unknown key \(did you mean 'epochs'\?\)"),
        ({"lr": -1}, r"^train\.lr: expected a positive number, got -1$"),
        ({"lr": "fast"}, r"^train\.lr: expected a positive number, got 'fast'$"),
        ({"batch_size": 1.5}, r"^train\.batch_size: expected an integer >= 1, got 1\.5$"),
        ({"amp": "fp16"}, r"^train\.amp: expected 'auto', true or false, got 'fp16'$"),
        ({"device": "gpu"}, r"^train\.device: expected 'cpu', 'cuda'"),
        ({"lr": 1e-4, "min_lr": 1e-3}, r"^train\.min_lr: expected at most lr"),
    ],
)
def test_train_config_errors(d, match):
    with pytest.raises(UserError, match=match):
        TrainConfig.from_dict(d)


def test_train_config_from_dict():
    cfg = TrainConfig.from_dict({"lr": "2e-3", "epochs": 3.0, "amp": False}, source="q.yaml: train")
    assert cfg.lr == 0.002 and cfg.epochs == 3 and isinstance(cfg.epochs, int) and cfg.amp is False
    with pytest.raises(UserError, match=r"^q\.yaml: train\.seed: "):
        TrainConfig.from_dict({"seed": "x"}, source="q.yaml: train")


def test_bench_trainer_smoke():
    from nas.bench.trainer import bench_trainer

    out = bench_trainer(candidate=TINY, batch_size=8, steps=2, warmup=1, repeats=1)
    assert out["trainer_images_per_s"] > 0 and out["baseline_images_per_s"] > 0
    assert out["ratio"] == pytest.approx(out["trainer_runs"][0] / out["baseline_runs"][0])
    assert {"torch", "threads", "device", "batch", "steps"} <= set(out)
