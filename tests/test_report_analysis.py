"""Report sections of the measure: columns and of funnels: proxies vs accuracy (rank correlations
by hand, baselines), ERF per axis and the front's maps, the funnel's cost and choice."""

from __future__ import annotations

import pandas as pd
import pytest

from nas.report.analysis import erf_section, funnel_section, proxy_section, proxy_table
from tests.test_report_cli import base_row, report_images, run_cli, write_campaign

ACC = [0.1, 0.2, 0.3, 0.4, 0.5]


def _proxy_rows() -> list[dict]:
    cols = {
        "synflow": [1, 2, 3, 4, 5],  # the same order as val_acc: tau 1
        "grad_norm": [2, 1, 3, 4, 5],  # one discordant pair of 10: tau (9 - 1) / 10
        "snip": [5, 4, 3, 2, 1],  # reversed: tau -1
        "params_m": [1, 3, 2, 4, 5],  # tau 0.8: the better baseline
        "macs_m": [4, 5, 3, 2, 1],  # tau -0.8: |tau| 0.8, the bar a proxy must pass
    }
    return [
        base_row(i, val_acc=a, **{k: float(v[i]) for k, v in cols.items()})
        for i, a in enumerate(ACC)
    ]


def test_proxy_rank_correlations_by_hand_against_the_baselines():
    t = proxy_table(pd.DataFrame(_proxy_rows())).set_index("measure")
    assert t.loc["synflow", "kendall_tau"] == pytest.approx(1.0)
    assert t.loc["grad_norm", "kendall_tau"] == pytest.approx(0.8)
    assert t.loc["snip", "kendall_tau"] == pytest.approx(-1.0)
    assert t.loc["params_m", "kendall_tau"] == pytest.approx(0.8)
    assert t.loc["macs_m", "kendall_tau"] == pytest.approx(-0.8)
    assert t.loc["synflow", "tau_p_value"] < t.loc["grad_norm", "tau_p_value"] < 0.1
    # Spearman: 1 - 6 sum d^2 / (n (n^2 - 1)), d = (1, -1, 0, 0, 0): 1 - 12 / 120
    assert t.loc["grad_norm", "spearman_rho"] == pytest.approx(0.9)
    assert t["beats_baselines"].to_dict() == {"synflow": True, "grad_norm": False, "snip": False,
                                              "params_m": False, "macs_m": False}  # fmt: skip
    assert "naswot" not in t.index  # not measured: not a row
    assert set(t["n"]) == {5}


def test_proxy_section_needs_enough_trained_rows():
    rows = _proxy_rows()
    assert "at least 5 trained trials" in proxy_section(pd.DataFrame(rows[:4])).unavailable
    failed = [{**r, "status": "error", "val_acc": None} for r in rows]
    assert proxy_section(pd.DataFrame(failed)).unavailable
    section = proxy_section(pd.DataFrame(rows))
    assert "Better than both here: synflow." in section.text
    assert [f.name for f in section.figures][:2] == ["proxy_synflow", "proxy_grad_norm"]
    assert "Kendall tau 1.000" in section.figures[0].caption


def _erf_rows() -> list[dict]:
    rows = []
    for i in range(6):
        r20 = 0.1 if i % 2 else 0.3
        m = [[float(i + 1)] * 4 for _ in range(4)]
        rows.append(base_row(i, erf_r20=r20, erf_r30=r20 + 0.1, erf_r50=r20 + 0.2, erf_r99=1.0,
                             erf_images=8, erf_map=m))  # fmt: skip
    return rows


def test_erf_section_means_per_axis_value_and_front_maps():
    df = pd.DataFrame(_erf_rows())
    section = erf_section(df, df.iloc[[4, 5]])
    t = section.table.set_index(["axis", "value"])
    assert t.loc[("param.width", "16"), "erf_r20"] == pytest.approx(0.1)  # odd rows: width 16
    assert t.loc[("param.width", "32"), "erf_r50"] == pytest.approx(0.5)
    assert t.loc[("param.width", "32"), "n"] == 3
    (fig,) = section.figures
    assert fig.name == "erf_front" and "2 Pareto-front trials" in fig.caption
    assert "input pixels" in fig.caption and fig.png.startswith(b"\x89PNG")
    assert "measure: {erf: true}" in erf_section(pd.DataFrame([base_row(0)]), df).unavailable


def test_funnel_section_says_what_the_screen_cost_and_left_out():
    kept = [base_row(i, screen_by="synflow", screen_score=10.0 - i, screen_rank=i + 1,
                     screen_s=0.5, wall_s=20.0) for i in range(2)]  # fmt: skip
    out = [base_row(i, status="screened", val_acc=None, screen_by="synflow", screen_rank=3 + i,
                    screen_score=5.0 - i, screen_s=0.5) for i in range(2, 5)]  # fmt: skip
    section = funnel_section(pd.DataFrame(kept + out))
    assert section.text.startswith("Screened 5 candidates by synflow (larger is better) in 2.5 s")
    assert "trained the 2 best (40.0 s of trial time) and left out 3" in section.text
    assert "min 1, median 2, max 3" in section.text  # 5 - i for i = 2, 3, 4
    assert section.table["screen_rank"].tolist() == [1, 2]
    assert funnel_section(pd.DataFrame([base_row(0)])).unavailable.startswith("not a funnel")


def test_the_rendered_report_embeds_the_new_sections(tmp_path, capsys):
    rows = [{**p, **{k: v for k, v in e.items() if k.startswith("erf")}}
            for p, e in zip(_proxy_rows(), _erf_rows())]  # fmt: skip
    rows.append(base_row(9, status="screened", val_acc=None, screen_by="synflow",
                         screen_score=0.5, screen_rank=6, screen_s=0.1))  # fmt: skip
    folder = write_campaign(tmp_path, rows)
    code, _, err = run_cli(capsys, "report", str(folder))
    assert code == 0, err
    html = (folder / "report.html").read_text()
    images = report_images(html)
    assert {"proxy_synflow", "proxy_params_m", "erf_front"} <= set(images)
    for title in ("Zero-cost proxies vs accuracy", "Effective receptive field", "Funnel"):
        assert title in html and title in (folder / "report.md").read_text()
    assert "t9" not in html.split(">Trials that did not finish</h2>")[1]  # screened: not a failure
