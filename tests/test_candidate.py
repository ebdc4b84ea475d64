"""Tests for nas.space.candidate: construction checks, canonical form, round trips and a stable id."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nas.errors import UserError
from nas.space.candidate import Candidate, CandidateError, load_candidate
from nas.vocab import BLOCKS, MACROS, MIXERS

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "spaces" / "presets").glob("*.yaml"))


def _three_stage() -> Candidate:
    return Candidate(
        depths=(1, 2, 1),
        widths=(16, 32, 64),
        kernels=(3, 5, 7),
        small_kernels=(1, 3, 0),
        mixers=("static", "mixed", "dynamic"),
        mlp_ratios=(2.0, 4.0, 3.0),
        head_dim=16,
        image_size=32,
        num_classes=10,
    )


# A spread of candidates: every macro, block and mixer, 3, 4 and 5 stages, non-default scalars.
CANDIDATES = {
    "default": Candidate(),
    "revcol": Candidate(
        macro="revcol", columns=4, reversible=True, inter_supervision=True, layer_scale=1e-6
    ),
    "replk": Candidate(
        block="replk",
        kernels=(31, 29, 27, 13),
        small_kernels=(5, 5, 5, 5),
        dw_ratio=1.5,
        grn=False,
        drop_path=0.3,
    ),
    "container": Candidate(
        block="container",
        mixers=("static", "mixed", "dynamic", "static_global"),
        widths=(64, 128, 256, 512),
        head_dim=32,
        stem="replk",
        downsample="container",
        head="convnext",
        mlp_ratios=(8.0, 8.0, 4.0, 4.0),
    ),
    "three_stage": _three_stage(),
    "five_stage": Candidate(
        depths=(1,) * 5,
        widths=(8, 16, 32, 64, 128),
        kernels=(3,) * 5,
        small_kernels=(0,) * 5,
        mixers=("static",) * 5,
        mlp_ratios=(4.0,) * 5,
        image_size=128,
        in_chans=1,
    ),
}
CANDIDATES.update({f"preset_{p.stem}": load_candidate(p) for p in PRESETS})


# ---------------------------------------------------------------------- value semantics
def test_presets_exist():
    assert len(PRESETS) >= 7
    assert {p.stem for p in PRESETS} >= {"convnextv2_atto", "replknet_31b", "revcol_t"}


def test_frozen():
    c = Candidate()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.macro = "revcol"
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.depths = (1, 1, 1, 1)


def test_per_stage_fields_are_tuples_and_hashable():
    c = Candidate(depths=[1, 1, 3, 1], kernels=[3, 5, 7, 9])  # lists are accepted
    assert c.depths == (1, 1, 3, 1) and isinstance(c.kernels, tuple)
    assert hash(c) == hash(Candidate(depths=(1, 1, 3, 1), kernels=(3, 5, 7, 9)))
    assert len({c, Candidate(depths=(1, 1, 3, 1), kernels=(3, 5, 7, 9)), Candidate()}) == 2
    assert {c: 1}[Candidate(depths=(1, 1, 3, 1), kernels=(3, 5, 7, 9))] == 1


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_pickle_round_trip(name):
    c = CANDIDATES[name]
    d = pickle.loads(pickle.dumps(c))
    assert d == c and hash(d) == hash(c) and d.id == c.id


def test_defaults_are_convnextv2_atto():
    assert Candidate() == load_candidate(ROOT / "spaces/presets/convnextv2_atto.yaml")


def test_defaults_resolved_per_block():
    c = Candidate(block="replk")
    assert (c.stem, c.downsample, c.head, c.norm) == ("replk", "replk", "replk", "bn")
    assert Candidate().norm == "ln"
    # RevCol has its own stem / fusion / head: canonical "convnext" whatever was asked.
    r = Candidate(macro="revcol", block="container", stem="replk", head="container")
    assert (r.stem, r.downsample, r.head) == ("convnext", "convnext", "convnext")


def test_canonicalisation_gives_equal_ids():
    # kernel / small kernel of a stage without a depthwise conv cannot matter
    a = Candidate(
        mixers=("static", "dynamic", "static", "static"), kernels=(7, 5, 7, 7), head_dim=40
    )
    b = Candidate(
        mixers=("static", "dynamic", "static", "static"), kernels=(7, 9, 7, 7), head_dim=40
    )
    assert a == b and a.id == b.id and a.kernels[1] == 0 and a.small_kernels[1] == 0
    # RevCol switches of a plain network
    assert Candidate(columns=4, reversible=True) == Candidate()
    # head_dim without attention, dw_ratio without RepLK blocks
    assert Candidate(head_dim=64).head_dim == 0 and Candidate(head_dim=64).id == Candidate().id
    assert Candidate(dw_ratio=2.0).dw_ratio == 1.0
    # ...but values that matter give different ids
    assert Candidate(kernels=(3, 7, 7, 7)).id != Candidate().id
    assert Candidate(macro="revcol", columns=2).id != Candidate(macro="revcol", columns=4).id
    assert Candidate(block="replk", dw_ratio=2.0).dw_ratio == 2.0


def test_numbers_normalised():
    c = Candidate(mlp_ratios=(4, 4, 4, 4), layer_scale=0, depths=(2.0, 2, 6, 2))
    assert c.mlp_ratios == (4.0,) * 4 and isinstance(c.mlp_ratios[0], float)
    assert isinstance(c.layer_scale, float) and c.depths == (2, 2, 6, 2)
    assert isinstance(c.depths[0], int)
    assert c == Candidate() and c.id == Candidate().id


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_params_round_trip(name):
    c = CANDIDATES[name]
    params = c.to_params()
    assert all(not isinstance(v, (list, tuple, dict)) for v in params.values())  # flat
    for i in range(c.num_stages):
        assert params[f"stage.{i}.kernel"] == c.kernels[i]
        assert params[f"stage.{i}.mixer"] == c.mixers[i]
    assert f"stage.{c.num_stages}.depth" not in params
    d = Candidate.from_params(params)
    assert d == c and d.id == c.id and d.num_stages == c.num_stages
    # with an unrelated base the full params still rebuild the same candidate
    assert Candidate.from_params(params, base=CANDIDATES["replk"]) == c


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_json_round_trip(name):
    c = CANDIDATES[name]
    text = c.to_json()
    # every field, except those added later while at their default (earlier ids stay the same)
    later = {"revcol_alpha": "bounded"}
    assert json.loads(text) == {k: v for k, v in c.to_dict().items() if later.get(k) != v}
    d = Candidate.from_json(text)
    assert d == c and d.id == c.id and d.to_json() == text
    assert Candidate.from_dict(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_yaml_round_trip(name, tmp_path):
    c = CANDIDATES[name]
    path = tmp_path / "c.yaml"
    path.write_text(c.to_yaml())
    d = load_candidate(path)
    assert d == c and d.id == c.id
    assert yaml.safe_load(c.to_yaml()) == c.to_dict()


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_loads_and_round_trips(path, tmp_path):
    c = load_candidate(path)
    assert isinstance(c, Candidate)
    raw = yaml.safe_load(path.read_text())
    for key, value in raw.items():  # every field written in the preset is kept as written
        got = getattr(c, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    out = tmp_path / path.name
    out.write_text(c.to_yaml())
    again = load_candidate(out)
    assert again == c and again.id == c.id and again.to_yaml() == c.to_yaml()


def test_preset_facts():
    rep = load_candidate(ROOT / "spaces/presets/replknet_31b.yaml")
    assert rep.kernels == (31, 29, 27, 13) and rep.small_kernels == (5, 5, 5, 5)
    assert rep.norm == "bn" and rep.block == "replk"
    rt = load_candidate(ROOT / "spaces/presets/revcol_t.yaml")
    assert (rt.macro, rt.columns, rt.reversible) == ("revcol", 4, True)
    cl = load_candidate(ROOT / "spaces/presets/container_light.yaml")
    assert cl.mixers[-1] == "mixed" and cl.head_dim == 32


def test_load_candidate_wrapped_form(tmp_path):
    path = tmp_path / "w.yaml"
    c = CANDIDATES["container"]
    path.write_text(yaml.safe_dump({"name": "mine", "candidate": c.to_dict()}))
    assert load_candidate(path) == c


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("macro: [plain\n", "YAML syntax error at line"),
        ("kernals: [3, 3, 3, 3]\n", "did you mean 'kernels'"),
        ("block: replk\nnorm: ln\n", "'ln' is only available"),
        ("- 1\n", "expected a mapping of fields"),
    ],
)
def test_load_candidate_errors_name_the_file(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CandidateError) as info:
        load_candidate(path)
    msg = str(info.value)
    assert str(path) in msg and needle in msg and "\n" not in msg


def test_load_candidate_missing_file(tmp_path):
    with pytest.raises(CandidateError, match="cannot read"):
        load_candidate(tmp_path / "nope.yaml")


# ---------------------------------------------------------------------- from_params forms
def test_from_params_forms():
    c = Candidate.from_params({"stage.kernel": 5, "width": 24, "depths": [1, 1, 3, 1]})
    assert c.kernels == (5, 5, 5, 5)
    assert c.widths == (24, 48, 96, 192)
    assert c.depths == (1, 1, 3, 1)
    d = Candidate.from_params({"stage.2.kernel": 9, "stage.0.depth": 3})
    assert d.kernels == (7, 7, 9, 7) and d.depths == (3, 2, 6, 2)  # partial: the base's 4 stages
    base = CANDIDATES["replk"]
    e = Candidate.from_params({"stage.3.small_kernel": 3}, base=base)
    assert e.kernels == base.kernels and e.small_kernels == (5, 5, 5, 3) and e.block == "replk"


def test_from_params_errors():
    with pytest.raises(CandidateError, match=r"did you mean 'kernels'") as info:
        Candidate.from_params({"kernals": [3, 3, 3, 3]})
    assert info.value.field == "kernals"
    with pytest.raises(CandidateError, match="stage index out of range; the network has 4 stages"):
        Candidate.from_params({"stage.4.kernel": 3})
    with pytest.raises(CandidateError, match="unknown field"):
        Candidate.from_dict({"macro": "plain", "colums": 2})
    with pytest.raises(CandidateError, match="expected a mapping"):
        Candidate.from_dict([1, 2])


# ---------------------------------------------------------------------- validation
def _mixers(*ms):
    return tuple(ms)


INVALID = [
    # (kwargs, field named in the error, fragments of the message: found and allowed)
    ({"kernels": (7, 4, 7, 7)}, "kernels[1]", ["odd integer >= 3", "got 4"]),
    ({"kernels": (7, 7, 7, 1)}, "kernels[3]", ["odd integer >= 3", "got 1"]),
    ({"small_kernels": (7, 0, 0, 0)}, "small_kernels[0]", ["smaller than the kernel 7", "got 7"]),
    ({"small_kernels": (9, 0, 0, 0)}, "small_kernels[0]", ["smaller than the kernel 7", "got 9"]),
    ({"small_kernels": (0, 4, 0, 0)}, "small_kernels[1]", ["odd integer", "got 4"]),
    ({"small_kernels": (0, -1, 0, 0)}, "small_kernels", ["integer >= 0", "got -1"]),
    (
        {"mixers": _mixers("static", "dynamic", "static", "static"), "head_dim": 48},
        "widths[1]",
        ["divisible by head_dim=48", "got 80"],
    ),
    (
        {"mixers": _mixers("static", "static", "static", "mixed"), "head_dim": 0},
        "head_dim",
        ["positive integer", "got 0"],
    ),
    ({"macro": "revcl"}, "macro", ["['plain', 'revcol']", "'revcl'", "did you mean 'revcol'"]),
    ({"block": "convnxt"}, "block", [str(list(BLOCKS)), "did you mean 'convnext'"]),
    ({"stem": "vit"}, "stem", [str(list(BLOCKS)), "'vit'"]),
    ({"mixers": _mixers("static", "static", "attn", "static")}, "mixers", [str(list(MIXERS))]),
    ({"norm": "gn"}, "norm", ["['ln', 'bn']", "'gn'"]),
    ({"depths": (2, 0, 6, 2)}, "depths", ["integer >= 1", "got 0"]),
    ({"widths": (40, 80, -160, 320)}, "widths", ["integer >= 1", "got -160"]),
    ({"depths": ()}, "depths", ["non-empty list"]),
    ({"num_classes": 0}, "num_classes", ["integer >= 1", "got 0"]),
    ({"image_size": -32}, "image_size", ["integer >= 1"]),
    ({"in_chans": 0}, "in_chans", ["integer >= 1"]),
    ({"columns": 0, "macro": "revcol"}, "columns", ["integer >= 1"]),
    ({"depths": (2, 2.5, 6, 2)}, "depths", ["integer", "2.5"]),
    ({"depths": (2, float("inf"), 6, 2)}, "depths", ["integer", "inf"]),
    ({"image_size": float("nan")}, "image_size", ["integer", "nan"]),
    ({"kernels": (7, 7, 7)}, "kernels", ["expected 4 values", "got 3"]),
    ({"mixers": ("static",) * 5}, "mixers", ["expected 4 values", "got 5"]),
    ({"mlp_ratios": 4.0}, "mlp_ratios", ["list of 4 values"]),
    ({"mlp_ratios": (4.0, 0.0, 4.0, 4.0)}, "mlp_ratios[1]", ["positive ratio"]),
    ({"block": "replk", "norm": "ln"}, "norm", ["'ln' is only available for block 'convnext'"]),
    ({"block": "container", "norm": "ln"}, "norm", ["block 'container'"]),
    ({"grn": "yes"}, "grn", ["true or false", "'yes'"]),
    ({"drop_path": 1.0}, "drop_path", ["[0, 1)", "got 1.0"]),
    ({"layer_scale": -1e-6}, "layer_scale", ["0 (off) or a positive"]),
    ({"layer_scale": "1e-6"}, "layer_scale", ["finite number", "'1e-6'"]),
    ({"block": "replk", "dw_ratio": 0}, "dw_ratio", ["positive ratio"]),
    ({"macro": "revcol", "columns": 1, "inter_supervision": True}, "inter_supervision", ["2"]),
    ({"image_size": 16}, "image_size", ["at least 32", "got 16"]),
    (
        {"mixers": _mixers("static", "static", "static", "static_global"), "image_size": 48},
        "mixers[3]",
        ["static_global", "divisible by the stage stride 32"],
    ),
]


@pytest.mark.parametrize(("kwargs", "field", "fragments"), INVALID, ids=[c[1] for c in INVALID])
def test_invalid_candidate(kwargs, field, fragments):
    with pytest.raises(CandidateError) as info:
        Candidate(**kwargs)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, UserError)
    assert err.field == field
    msg = str(err)
    assert msg.startswith(f"{field}: ")
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    assert "\n" not in msg


def test_valid_edge_cases():
    # small kernel smaller than the kernel and odd; attention widths divisible by head_dim
    Candidate(small_kernels=(5, 3, 1, 0))
    Candidate(mixers=("dynamic",) * 4, head_dim=40)
    Candidate(mixers=("static", "static", "static", "static_global"), image_size=64)
    Candidate(macro="revcol", columns=2, inter_supervision=True)
    Candidate(block="replk", norm="bn")
    Candidate(image_size=32)
    assert set(MACROS) == {"plain", "revcol"}


# ---------------------------------------------------------------------- a stable id
def test_id_format_and_uniqueness():
    ids = {name: c.id for name, c in CANDIDATES.items()}
    assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in ids.values())
    distinct = {c for c in CANDIDATES.values()}
    assert len(set(ids.values())) == len(distinct)


_CHILD = """
import json, sys
import numpy as np
from nas.space.candidate import Candidate
from nas.space import load_space
for line in sys.stdin:
    print(Candidate.from_json(line).id)
space = load_space(sys.argv[1])
samples, _ = space.sample_distinct(20, np.random.default_rng(3))
for s in samples:
    print(s.candidate.id, s.id)
"""


def test_id_stable_across_processes_and_hash_seeds():
    import numpy as np

    from nas.space import load_space

    stdin = "".join(c.to_json() + "\n" for c in CANDIDATES.values())
    outputs = []
    for seed in ("0", "123456"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(ROOT / "spaces/seeds.yaml")],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    lines = outputs[0].splitlines()
    assert lines[: len(CANDIDATES)] == [c.id for c in CANDIDATES.values()]
    space = load_space(ROOT / "spaces/seeds.yaml")
    samples, _ = space.sample_distinct(20, np.random.default_rng(3))
    assert lines[len(CANDIDATES) :] == [f"{s.candidate.id} {s.id}" for s in samples]


def test_from_params_head_dim_of_a_base_without_attention():
    assert Candidate().head_dim == 0  # canonical: no attention
    c = Candidate.from_params({"stage.3.mixer": "mixed"})
    assert c.head_dim == 32 and c.mixers == ("static", "static", "static", "mixed")
    assert Candidate.from_params({"stage.3.mixer": "mixed", "head_dim": 64}).head_dim == 64
    with pytest.raises(CandidateError, match="head_dim"):
        Candidate.from_params({"stage.3.mixer": "mixed", "head_dim": 0})
