"""``nas report`` and ``nas export`` end to end: on a real (tiny) survey campaign run on a local Ray,
and on hand-made tables with failed, infeasible, single and ablation rows."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from nas.campaign.table import CampaignTable, read_table
from nas.cli import main

IMG = re.compile(r"<img alt='([^']+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>")


def report_images(html: str) -> dict[str, bytes]:
    return {name: base64.b64decode(data) for name, data in IMG.findall(html)}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------------- a real campaign
@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> Path:
    import ray

    from nas.campaign import init_ray, run_campaign
    from nas.campaign.runner import Runner
    from tests.test_campaign import RUNNER, write_space

    tmp = tmp_path_factory.mktemp("survey")
    runner = tmp / "runner.yaml"
    runner.write_text(RUNNER)
    init_ray(Runner(num_cpus=2, object_store_mb=128))
    try:
        folder = run_campaign(
            "survey",
            str(write_space(tmp)),
            name="s",
            runner_path=str(runner),
            n=6,
            seed=0,
            results=str(tmp),
        )
    finally:
        ray.shutdown()
    return folder


@pytest.mark.heavy
def test_report_of_a_real_survey(survey, capsys):
    from nas.report import pareto_front

    code, out, err = run_cli(capsys, "report", str(survey))
    assert code == 0, err
    assert "report.html" in out and "Pareto front: ok" in out
    html = (survey / "report.html").read_text()
    images = report_images(html)
    assert any(n.startswith("pareto_") for n in images) and any(
        n.startswith("edf_") for n in images
    )
    assert "hypervolume" in images
    for data in images.values():
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 2000
    assert html.count("<figcaption>") == len(images)  # every plot has a caption
    for name in images:
        assert (survey / "plots" / f"{name}.png").is_file()
    assert "](plots/pareto_" in (survey / "report.md").read_text()
    # pareto.csv: the front over the campaign's own objectives, one row per member
    df = read_table(survey)
    front = pareto_front(df, {"val_acc": "max", "macs_m": "min"}).front
    csv = pd.read_csv(survey / "pareto.csv")
    assert sorted(csv["trial_id"]) == sorted(front["trial_id"]) and len(csv) >= 1
    # other objectives and a budget from the command line
    code, out, err = run_cli(
        capsys,
        "report",
        str(survey),
        "--objectives",
        "val_acc:max,params_m:min",
        "--budget",
        "params_m<=10",
    )
    assert code == 0, err
    assert "Best under params_m<=10: trial" in (survey / "report.md").read_text()


@pytest.mark.heavy
def test_export_pareto_rebuilds_exactly(survey, capsys, tmp_path):
    import nas

    code, out, err = run_cli(capsys, "export", str(survey), "--pareto", "--out", str(tmp_path))
    assert code == 0, err
    folders = [Path(line.split(":")[0]) for line in out.strip().splitlines()]
    assert folders and all((f / "deploy.pt").is_file() for f in folders), out
    x = torch.randn(2, 3, 32, 32)
    for f in folders:
        row = json.loads((f / "row.json").read_text())
        candidate = nas.load_candidate(f / "candidate.yaml")
        assert candidate.id == row["candidate_id"]
        model = nas.build_model(candidate)
        assert sum(p.numel() for p in model.parameters()) == row["params"]
        deploy = nas.reparameterize(model)
        deploy.load_state_dict(torch.load(f / "deploy.pt", weights_only=True))
        assert sum(p.numel() for p in deploy.parameters()) == row["params_deploy"]
        assert torch.isfinite(deploy(x)).all()
        assert "nas.build_model" in (f / "README.md").read_text()
    # the trained weights, not fresh ones: the deploy model reproduces the checkpoint's model
    from nas.report.export import find_weights

    row = json.loads((folders[0] / "row.json").read_text())
    state = torch.load(find_weights(survey, row["trial_id"]), weights_only=True)
    trained = nas.build_model(nas.load_candidate(folders[0] / "candidate.yaml"))
    trained.load_state_dict(state["model"])
    trained.eval()
    deploy = nas.reparameterize(nas.build_model(nas.load_candidate(folders[0] / "candidate.yaml")))
    deploy.load_state_dict(torch.load(folders[0] / "deploy.pt", weights_only=True))
    torch.testing.assert_close(deploy(x), trained(x), atol=1e-4, rtol=1e-4)


@pytest.mark.heavy
def test_export_selection_and_errors(survey, capsys, tmp_path):
    df = read_table(survey)
    ok = df[df["status"] == "ok"]
    limit = float(ok["macs_m"].median())
    code, out, err = run_cli(
        capsys, "export", str(survey), "--best-under", f"macs_m<={limit}", "--out", str(tmp_path)
    )
    assert code == 0, err
    chosen = json.loads(next(tmp_path.glob("*/row.json")).read_text())
    feasible = ok[ok["macs_m"] <= limit]
    assert chosen["val_acc"] == feasible["val_acc"].max() and chosen["macs_m"] <= limit
    trial = str(df["trial_id"].iloc[0])
    code, out, err = run_cli(
        capsys, "export", str(survey), "--trial", trial, "--out", str(tmp_path)
    )
    assert code == 0 and (tmp_path / trial / "candidate.yaml").is_file()
    before = (survey / "trials.parquet").read_bytes()
    for argv, match in (
        (["--trial", "nope"], "no trial 'nope'"),
        (["--best-under", "macs_m<=0"], "no finished trial satisfies macs_m<=0"),
        (["--best-under", "macs_m=<1"], "macs_m=<1"),
    ):
        code, out, err = run_cli(capsys, "export", str(survey), *argv, "--out", str(tmp_path))
        assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
    assert (survey / "trials.parquet").read_bytes() == before


# ---------------------------------------------------------------------- hand-made tables
def base_row(i: int, **kw) -> dict:
    row = {
        "campaign": "t",
        "mode": "survey",
        "trial_id": f"t{i}",
        "candidate_id": f"c{i}",
        "seed": 0,
        "status": "ok",
        "reason": None,
        "val_acc": 0.5 + 0.05 * i,
        "latency_ms_p50": 1.0 + i,
        "macs_m": 10.0 + i,
        "params_m": 1.0,
        "finished_at": float(i),
        "arch.width": 16,
        "param.width": 16 if i % 2 else 32,
        "history": json.dumps(
            [{"epoch": 1, "val_acc": 0.4}, {"epoch": 2, "val_acc": 0.5 + 0.05 * i}]
        ),
    }
    return {**row, **kw}


def write_campaign(tmp_path: Path, rows: list[dict]) -> Path:
    folder = tmp_path / "c"
    folder.mkdir()
    table = CampaignTable(folder)
    for row in rows:
        table.add(row)
    (folder / "campaign.json").write_text(
        json.dumps({"spec": {"objectives": {"val_acc": "max", "latency_ms_p50": "min"}}})
    )
    return folder


def test_report_on_one_row(tmp_path, capsys):
    folder = write_campaign(tmp_path, [base_row(0)])
    code, out, err = run_cli(capsys, "report", str(folder))
    assert code == 0, err
    html = (folder / "report.html").read_text()
    assert "pareto_latency_ms_p50" in report_images(html)
    assert "Not drawn: no design axis has at least two values" in html  # one row: no EDF
    assert pd.read_csv(folder / "pareto.csv")["trial_id"].tolist() == ["t0"]


def test_report_with_failed_and_infeasible_rows(tmp_path, capsys):
    rows = [base_row(i) for i in range(6)]
    rows.append(base_row(6, status="infeasible", reason="macs_m 70 > 60", val_acc=None))
    rows.append(base_row(7, status="error", reason="RuntimeError: boom", val_acc=None))
    folder = write_campaign(tmp_path, rows)
    code, out, err = run_cli(capsys, "report", str(folder))
    assert code == 0, err
    html = (folder / "report.html").read_text()
    names = report_images(html)
    assert {"pareto_latency_ms_p50", "hypervolume", "edf_width", "curves_front"} <= set(names)
    assert "RuntimeError: boom" in html and "macs_m 70 &gt; 60" in html
    front = pd.read_csv(folder / "pareto.csv")
    assert "t6" not in set(front["trial_id"]) and "t7" not in set(front["trial_id"])


def test_report_only_failures_says_what_cannot_be_drawn(tmp_path, capsys):
    rows = [base_row(i, status="error", reason="boom", val_acc=None) for i in range(3)]
    folder = write_campaign(tmp_path, rows)
    code, out, err = run_cli(capsys, "report", str(folder))
    assert code == 0, err
    html = (folder / "report.html").read_text()
    assert not report_images(html)
    assert "Not drawn: no finished trial has a value for every objective" in html
    assert "Pareto front: not drawn" in out


def test_report_of_an_ablation_draws_bars(tmp_path, capsys):
    rows = []
    for seed in (0, 1):
        rows.append(
            base_row(
                10 + seed,
                mode="ablate",
                seed=seed,
                axis="baseline",
                axis_value=None,
                **{"arch.grn": True},
            )
        )
        rows.append(
            base_row(
                20 + seed,
                mode="ablate",
                seed=seed,
                axis="grn",
                axis_value=json.dumps(False),
                val_acc=0.4 + 0.01 * seed,
                **{"arch.grn": False},
            )
        )
    folder = write_campaign(tmp_path, rows)
    code, out, err = run_cli(capsys, "report", str(folder))
    assert code == 0, err
    html = (folder / "report.html").read_text()
    assert "ablation_val_acc" in report_images(html)
    assert "EDFs need a survey" in html


def test_report_and_export_bad_input(tmp_path, capsys):
    folder = write_campaign(tmp_path, [base_row(0), base_row(1)])
    before = (folder / "trials.parquet").read_bytes()
    for argv, match in (
        (["report", str(tmp_path / "missing")], "not a campaign folder (no such folder)"),
        (["report", str(folder), "--objectives", "val_acc:up"], "sense 'up' is not allowed"),
        (["report", str(folder), "--objectives", "nope:max"], "no column 'nope'"),
        (["report", str(folder), "--budget", "latency<2"], "no column 'latency'"),
        (["export", str(folder), "--trial", "t9", "--out", str(tmp_path / "o")], "no trial 't9'"),
    ):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2, (argv, err)
        assert match in err and len(err.strip().splitlines()) == 1, err
    assert (folder / "trials.parquet").read_bytes() == before
    with pytest.raises(SystemExit) as e:  # argparse: --pareto and --trial conflict
        main(["export", str(folder), "--pareto", "--trial", "t0", "--out", str(tmp_path)])
    assert e.value.code == 2


def test_export_without_weights_says_retrain(tmp_path, capsys):
    from nas.space.candidate import Candidate

    c = Candidate()
    arch = {f"arch.{k}": v for k, v in c.to_params().items()}
    row = {**base_row(0), **arch, "candidate_id": c.id, "epochs": 2}
    folder = write_campaign(tmp_path, [row])
    code, out, err = run_cli(
        capsys, "export", str(folder), "--trial", "t0", "--out", str(tmp_path / "o")
    )
    assert code == 0, err
    dest = tmp_path / "o" / "t0"
    assert not (dest / "deploy.pt").exists()
    assert "no checkpoint of trial t0" in (dest / "RETRAIN.md").read_text()
    assert Candidate.from_row(read_table(folder).iloc[0].to_dict()).id == c.id


@pytest.mark.heavy
def test_export_in_timm_layout_round_trips_the_trained_weights(survey, capsys, tmp_path):
    import nas

    code, out, err = run_cli(
        capsys, "export", str(survey), "--pareto", "--out", str(tmp_path), "--format", "timm"
    )
    assert code == 0, err
    folders = [Path(line.split(":")[0]) for line in out.strip().splitlines()]
    assert folders and "timm.pt + timm.json" in out, out
    x = torch.randn(2, 3, 32, 32)
    for f in folders:
        spec = json.loads((f / "timm.json").read_text())
        candidate = nas.load_candidate(f / "candidate.yaml")
        family = "convnextv2" if candidate.grn else "convnext"
        assert spec["model_name"].startswith(family + "_") and spec["kwargs"]["num_classes"] == 10
        state = torch.load(f / "timm.pt", weights_only=True)
        assert any(k.startswith("stages.0.blocks.0.conv_dw") for k in state)
        model = nas.build_model(candidate)
        assert nas.load_weights(model, state) == "timm"
        deploy = nas.reparameterize(nas.build_model(candidate))
        deploy.load_state_dict(torch.load(f / "deploy.pt", weights_only=True))
        torch.testing.assert_close(model.eval()(x), deploy(x), atol=1e-5, rtol=1e-5)


def test_report_contents_link_every_section(tmp_path, capsys):
    rows = [
        base_row(i, mode="ablate", seed=i % 2, axis="baseline", axis_value=None) for i in (1, 2)
    ]
    folder = write_campaign(tmp_path, rows)
    code, _, err = run_cli(capsys, "report", str(folder))
    assert code == 0, err
    html = (folder / "report.html").read_text()
    ids = re.findall(r"<h2 id='([^']+)'>", html)
    nav = html[html.index("<nav>") : html.index("</nav>")]
    assert len(ids) == len(set(ids)) >= 10 and re.findall(r"href='#([^']+)'", nav) == ids
    assert html.index("<nav>") < html.index("<h2")  # the contents come first
    md = (folder / "report.md").read_text()
    assert all(f"](#{a})" in md and f'<a id="{a}"></a>' in md for a in ids)


def test_pareto_error_bars_data():
    from nas.report.plots import latency_interval, seed_spread

    df = pd.DataFrame(
        {
            "candidate_id": ["a", "a", "b", "c"],
            "status": ["ok", "ok", "ok", "error"],
            "val_acc": [0.8, 0.9, 0.7, None],
            "latency_ms_p50": [2.0, 2.2, 5.0, 1.0],
            "latency_ci_low_ms": [1.5, 2.0, None, 0.9],
            "latency_ci_high_ms": [3.0, 2.5, None, 1.2],
        }
    )
    ok = df.iloc[:3]
    bars = latency_interval(ok, "latency_ms_p50")  # the row without an interval: no bar
    assert bars.ravel().tolist() == pytest.approx([0.5, 0.2, 0.0, 1.0, 0.3, 0.0])
    assert latency_interval(ok, "macs_m") is None  # only the median latency has an interval
    assert latency_interval(ok.drop(columns="latency_ci_low_ms"), "latency_ms_p50") is None
    # accuracy: each row's distance to its candidate's lowest and highest seed; b has one seed
    assert seed_spread(df, ok, "val_acc").ravel().tolist() == pytest.approx([0, 0.1, 0, 0.1, 0, 0])
    assert seed_spread(df, df.iloc[2:3], "val_acc") is None  # one seed each: no spread
