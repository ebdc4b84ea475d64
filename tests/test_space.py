"""Tests for nas.space / nas.space.parse: the YAML language, sampling, Optuna, size, errors."""

from __future__ import annotations

import json
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest

from nas.errors import SpaceError, UserError
from nas.space import Space, load_space, parse_space
from nas.space.candidate import Candidate, load_candidate

optuna.logging.set_verbosity(optuna.logging.WARNING)

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "spaces" / "seeds.yaml"
QUICKSTART = ROOT / "spaces" / "quickstart.yaml"

# Every construct of the language in a space small enough to enumerate: 1200 points by hand,
# macro 5 (plain | revcol x columns 2 x reversible 2) * width/drop_path 5 (16 | 24, 32 x 2)
# * grn 2 * reparam/small 3 * tied kernel 2 * mixers 4 (stage 1: 2, stage 2: 2).
TINY = """
name: tiny
data: {dataset: digits, image_size: 32}
objectives: {val_acc: max, params_m: min}
constraints: {params_m: [null, 2], macs_m: [0, 100]}
space:
  macro: {choice: [plain, revcol]}
  columns: {choice: [2, 4], when: {macro: revcol}}
  reversible: {choice: [true, false], when: {macro: revcol}}
  width: {int: [16, 32], step: 8}
  grn: {choice: [true, false]}
  layer_scale: {derive: "0.0 if grn else 1.0e-6"}
  drop_path: {choice: [0.0, 0.1], when: {wide: true}}
  head_dim: 16
  vars:
    reparam: {choice: [true, false]}
    small: {choice: [3, 5], when: {reparam: true}}
    wide: {derive: "width >= 24"}
  stage:
    kernel: {choice: [3, 7], tie: true}
    mixer: [static, {choice: [static, mixed]}, {choice: [static, dynamic]}, static]
    small_kernel: {derive: "min(small, kernel - 2) if reparam else 0"}
"""

# when: on a derived value, int ranges with a step, a per-stage dimension conditional on a
# top-level one: width 16 -> grn 2 * mlp 2**4 = 32; 24 -> 2; 32 -> k 3; 40 -> k 3 * mlp 16 = 48.
DERIVED_WHEN = """
space:
  width: {int: [16, 40], step: 8}
  vars:
    big: {derive: "width >= 32"}
    k: {choice: [3, 5, 7], when: {big: true}}
  grn: {choice: [true, false], when: {big: false}}
  stage:
    kernel: {derive: "k if big else 3"}
    mlp_ratio: {choice: [2.0, 4.0], when: {width: [16, 40]}}
"""

# a per-stage condition on a tied dimension: static -> 2**4 kernels, dynamic -> 1
TIED_WHEN = """
space:
  head_dim: 8
  stage:
    mixer: {choice: [static, dynamic], tie: true}
    kernel: {choice: [3, 5], when: {mixer: static}}
"""

# a per-stage condition on the same stage: (2 kernels + 1) ** 4 stages
STAGE_WHEN = """
space:
  head_dim: 8
  stage:
    mixer: {choice: [static, dynamic]}
    kernel: {choice: [3, 5], when: {mixer: static}}
"""

# float ranges (linear and log), an int log range, list-valued choices, training settings
CONTINUOUS = """
data: {dataset: digits, image_size: 32}
space:
  drop_path: {float: [0.0, 0.3]}
  layer_scale: {float: [1.0e-7, 1.0e-5], log: true}
  width: {int: [16, 64], step: 16}
  depths: {choice: [[1, 1, 2, 1], [2, 2, 2, 2]]}
  grn: {choice: [true, false]}
  vars:
    deep: {int: [1, 8], log: true}
  train:
    lr: {float: [1.0e-4, 1.0e-2], log: true}
    epochs: {int: [1, 3]}
  stage:
    kernel: {choice: [3, 5, 7], tie: true}
    mixer: [static, static, {choice: [static, mixed]}, static]
    mlp_ratio: {float: [2.0, 4.0]}
"""

SMALL = {"tiny": (TINY, 1200), "derived_when": (DERIVED_WHEN, 85)}
SMALL |= {"tied_when": (TIED_WHEN, 17), "stage_when": (STAGE_WHEN, 81)}


def _space(tmp_path: Path, text: str, name: str = "space.yaml") -> Space:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_space(path)


def _spaces(tmp_path: Path) -> dict[str, Space]:
    out = {name: _space(tmp_path, text, f"{name}.yaml") for name, (text, _) in SMALL.items()}
    out["continuous"] = _space(tmp_path, CONTINUOUS, "continuous.yaml")
    out["seeds"] = load_space(SEEDS)
    out["quickstart"] = load_space(QUICKSTART)
    return out


@pytest.fixture(scope="module")
def spaces(tmp_path_factory) -> dict[str, Space]:
    return _spaces(tmp_path_factory.mktemp("spaces"))


ALL = ["tiny", "derived_when", "tied_when", "stage_when", "continuous", "seeds", "quickstart"]


def _present_iff_active(space: Space, params: dict) -> None:
    for dim in space.dims:
        assert (dim.name in params) == dim.active(params), (dim.name, dim.when, params)
        for ref, allowed in dim.when:
            if dim.name in params:
                assert params[ref] in allowed


# ---------------------------------------------------------------------- parsing
def test_seeds_space_structure(spaces):
    s = spaces["seeds"]
    assert s.name == "seeds" and s.stages == 4 and s.sampler == "tpe"
    assert s.objectives == {"val_acc": "max", "latency_ms_p50": "min"}
    assert s.constraints == {"params_m": (0, 12)}
    assert s.data == {"dataset": "digits", "image_size": 32}
    assert s.train == {"epochs": 6, "batch_size": 128, "lr": 2.0e-3}
    preset = load_candidate(ROOT / "spaces/presets/convnextv2_atto.yaml")
    assert s.base == Candidate.from_params({"image_size": 32, "num_classes": 10}, base=preset)
    names = [d.name for d in s.dims]
    assert len(names) == len(set(names))
    for name in ("macro", "vars.reparam", "stage.3.kernel", "stage.0.small_kernel", "train.lr"):
        assert name in names
    # dependency order: everything a dimension reads comes before it
    position = {n: i for i, n in enumerate(names)}
    for d in s.dims:
        assert all(position[dep] < position[d.name] for dep in d.depends_on), d.name
    assert position["macro"] < position["columns"]
    assert position["vars.small"] < position["stage.2.small_kernel"]


def test_dimension_kinds(spaces):
    dims = {d.name: d for d in spaces["continuous"].dims}
    assert dims["drop_path"].kind == "float" and not dims["drop_path"].log
    assert dims["layer_scale"].kind == "float" and dims["layer_scale"].log
    assert (dims["width"].kind, dims["width"].low, dims["width"].high, dims["width"].step) == (
        "int",
        16,
        64,
        16,
    )
    assert list(dims["width"].grid()) == [16, 32, 48, 64]
    assert dims["vars.deep"].log and list(dims["vars.deep"].grid()) == list(range(1, 9))
    assert dims["depths"].values == ([1, 1, 2, 1], [2, 2, 2, 2])
    assert "stage.kernel" in dims and "stage.0.kernel" not in dims  # tied: one dimension
    assert dims["stage.0.mixer"].kind == "fixed" and dims["stage.2.mixer"].kind == "choice"
    assert [f"stage.{i}.mlp_ratio" in dims for i in range(4)] == [True] * 4
    assert dims["train.lr"].kind == "float" and dims["train.epochs"].kind == "int"
    tiny = {d.name: d for d in spaces["tiny"].dims}
    assert tiny["layer_scale"].kind == "derive" and tiny["head_dim"].values == (16,)
    assert tiny["columns"].when == (("macro", ("revcol",)),)
    assert tiny["drop_path"].when == (("vars.wide", (True,)),)  # helper vars resolve by name
    assert dict(tiny["stage.2.small_kernel"].env) == {
        "kernel": "stage.kernel",
        "reparam": "vars.reparam",
        "small": "vars.small",
    }


def test_from_dict_without_file():
    space = parse_space({"space": {"grn": {"choice": [True, False]}}})
    assert space.source == "<space>" and space.name == "space" and space.base == Candidate()
    assert space.cardinality() == 2
    with pytest.raises(SpaceError, match=r"^<space>: space.grn.choice: "):
        parse_space({"space": {"grn": {"choice": []}}})


def test_data_sets_the_base(tmp_path):
    space = _space(tmp_path, "data: {dataset: cifar10, image_size: 64}\n")
    assert (space.base.num_classes, space.base.image_size) == (10, 64)
    space = _space(tmp_path, "data: {dataset: imagefolder, num_classes: 7}\n")
    assert space.base.num_classes == 7 and space.base.image_size == 224


def test_base_as_mapping_and_relative_path(tmp_path):
    space = _space(tmp_path, "base: {block: replk, kernels: [13, 13, 13, 13]}\n")
    assert space.base.block == "replk" and space.base.kernels == (13,) * 4
    space = load_space(QUICKSTART)  # `base: presets/...` is relative to the space file
    assert space.base.widths == (40, 80, 160, 320) and space.base.grn


def test_three_stage_space(tmp_path):
    base = Candidate(
        depths=(1, 1, 1),
        widths=(8, 16, 32),
        kernels=(3, 3, 3),
        small_kernels=(0, 0, 0),
        mixers=("static",) * 3,
        mlp_ratios=(4.0,) * 3,
        image_size=32,
    )
    (tmp_path / "base3.yaml").write_text(base.to_yaml())
    space = _space(tmp_path, "base: base3.yaml\nstages: 3\nspace: {stage: {depth: [1, 2, 3]}}\n")
    s = space.sample(np.random.default_rng(0))
    assert space.stages == 3 and s.candidate.depths == (1, 2, 3)


def test_huge_int_range_is_cheap(tmp_path):
    space = _space(tmp_path, "space: {num_classes: {int: [1, 1000000000000]}, grn: true}\n")
    assert space.cardinality() == 10**12
    values = [space.sample(np.random.default_rng(i)).candidate.num_classes for i in range(5)]
    assert all(1 <= v <= 10**12 for v in values) and len(set(values)) == 5


# ---------------------------------------------------------------------- sampling
@pytest.mark.parametrize("name", ALL)
def test_sample_params_deterministic(spaces, name):
    space = spaces[name]
    rng = np.random.default_rng(7)
    a = [space.sample_params(rng) for _ in range(30)]
    rng = np.random.default_rng(7)
    b = [space.sample_params(rng) for _ in range(30)]
    assert a == b
    rng = np.random.default_rng(8)
    c = [space.sample_params(rng) for _ in range(30)]
    assert c != a


@pytest.mark.parametrize("name", ALL)
def test_sampled_points_satisfy_conditions(spaces, name):
    space = spaces[name]
    rng = np.random.default_rng(0)
    for _ in range(150):
        params = space.sample_params(rng)
        _present_iff_active(space, params)
        for dim in space.dims:
            grid = dim.grid()
            if dim.name in params and grid is not None:
                assert params[dim.name] in grid
            elif dim.name in params and dim.kind in ("int", "float"):
                assert dim.low <= params[dim.name] <= dim.high


def test_conditional_branches_all_reached(spaces):
    space = spaces["seeds"]
    rng = np.random.default_rng(1)
    points = [space.sample_params(rng) for _ in range(200)]
    revcol = [p for p in points if p["macro"] == "revcol"]
    plain = [p for p in points if p["macro"] == "plain"]
    assert revcol and plain
    assert all("columns" in p and "stem" not in p for p in revcol)
    assert all("columns" not in p and "stem" in p for p in plain)
    assert {p["block"] == "replk" for p in points} == {True, False}
    assert all(("dw_ratio" in p) == (p["block"] == "replk") for p in points)


def test_derived_values(spaces):
    space = spaces["seeds"]
    rng = np.random.default_rng(2)
    for _ in range(100):
        p = space.sample_params(rng)
        assert p["norm"] == ("ln" if p["block"] == "convnext" else "bn")
        assert p["layer_scale"] == (0.0 if p["grn"] and p["macro"] == "plain" else 1e-6)
        for i in range(4):
            want = min(p["vars.small"], p[f"stage.{i}.kernel"] - 2) if p["vars.reparam"] else 0
            assert p[f"stage.{i}.small_kernel"] == want


def test_tie_and_per_stage_list(spaces):
    space = spaces["tiny"]
    rng = np.random.default_rng(3)
    mixers = set()
    for _ in range(60):
        s = space.sample(rng)
        c = s.candidate
        assert len(set(c.kernels) - {0}) == 1  # tied (0: canonical kernel of a dynamic stage)
        assert c.mixers[0] == "static" and c.mixers[3] == "static"
        assert c.mixers[1] in ("static", "mixed") and c.mixers[2] in ("static", "dynamic")
        assert c.widths == tuple(s.params["width"] * 2**i for i in range(4))
        mixers.add(c.mixers)
    assert len(mixers) == 4


def test_sample_to_candidate(spaces):
    space = spaces["continuous"]
    s = space.sample(np.random.default_rng(4))
    assert isinstance(s.candidate, Candidate)
    assert set(s.train) == {"lr", "epochs"} and 1e-4 <= s.train["lr"] <= 1e-2
    assert not any(k.startswith(("train.", "vars.")) for k in s.candidate.to_params())
    assert s.candidate.image_size == 32 and s.candidate.num_classes == 10
    assert s.id != s.candidate.id  # training settings are part of a sample's id
    assert space.to_sample(s.params) == s


@pytest.mark.parametrize("name", ["tiny", "seeds", "quickstart", "continuous"])
def test_sample_distinct_unique(spaces, name):
    space = spaces[name]
    samples, stats = space.sample_distinct(60, np.random.default_rng(5))
    assert len(samples) == 60 and len({s.id for s in samples}) == 60
    assert stats["draws"] == 60 + stats["invalid"] + stats["duplicate"] + stats["rejected"]
    again, _ = space.sample_distinct(60, np.random.default_rng(5))
    assert [s.id for s in again] == [s.id for s in samples]


def test_sample_distinct_counts_duplicates_and_rejects(tmp_path):
    space = _space(tmp_path, TIED_WHEN)  # 17 points
    samples, stats = space.sample_distinct(17, np.random.default_rng(0))
    assert len({s.id for s in samples}) == 17 and stats["duplicate"] > 0
    with pytest.raises(SpaceError, match="found only 17 distinct valid candidates of 18"):
        space.sample_distinct(18, np.random.default_rng(0), max_tries=500)

    def accept(s):
        return s.candidate.mixers[0] == "static" and s.candidate.kernels[0] == 3

    kept, stats = space.sample_distinct(5, np.random.default_rng(0), accept=accept)
    assert len(kept) == 5 and all(accept(s) for s in kept) and stats["rejected"] > 0


def test_invalid_combinations_are_rejected(tmp_path):
    # head_dim 48 divides every stage width for width 48 (48, 96, ...), none for width 40
    text = """
    data: {image_size: 32}
    space:
      head_dim: 48
      width: {choice: [40, 48]}
      stage:
        mixer: {choice: [static, dynamic]}
    """
    space = _space(tmp_path, text)
    samples, stats = space.sample_distinct(17, np.random.default_rng(0))  # 1 + 16 valid of 32
    assert stats["invalid"] > 0 and {s.candidate.widths[0] for s in samples} == {40, 48}
    for s in samples:
        c = s.candidate
        assert all(w % 48 == 0 for w, m in zip(c.widths, c.mixers) if m == "dynamic")


def test_sample_raises_when_nothing_is_valid(tmp_path):
    space = _space(tmp_path, "space: {head_dim: 7, stage: {mixer: dynamic}}\n")
    with pytest.raises(SpaceError, match=r"space: no valid candidate in 5 draws; last error: "):
        space.sample(np.random.default_rng(0), max_tries=5)


# ---------------------------------------------------------------------- size
@pytest.mark.parametrize("name", sorted(SMALL))
def test_cardinality_matches_enumeration(spaces, name):
    space = spaces[name]
    points = list(space.enumerate())
    assert space.cardinality() == len(points) == SMALL[name][1]
    keys = {json.dumps(p, sort_keys=True) for p in points}
    assert len(keys) == len(points)
    for p in points:
        _present_iff_active(space, p)
    rng = np.random.default_rng(6)
    for _ in range(50):  # every sampled point is an enumerated one
        assert json.dumps(space.sample_params(rng), sort_keys=True) in keys


def test_enumerated_points_build(spaces):
    space = spaces["tiny"]
    ids = {space.to_sample(p).candidate.id for p in space.enumerate()}
    assert 1 < len(ids) <= 1200


def test_cardinality_of_known_spaces(spaces):
    # macro (plain | revcol x 2 x 2), width, depths, grn, reparam (off | small 3 or 5), stages
    assert spaces["quickstart"].cardinality() == (1 + 2 * 2) * 3 * 2 * 2 * (1 + 2) * 3**4 * 3**4
    assert spaces["seeds"].cardinality() == 253_624_320_000


def test_cardinality_infinite_with_float_range(spaces, tmp_path):
    assert spaces["continuous"].cardinality() == math.inf
    space = _space(tmp_path, "space: {train: {lr: {float: [1.0e-4, 1.0e-2], log: true}}}\n")
    assert space.cardinality() == math.inf
    with pytest.raises(SpaceError, match="enumerate"):
        list(space.enumerate())
    # a float range under a condition that never holds does not count
    space = _space(
        tmp_path,
        "space: {vars: {no: {derive: 'False'}}, drop_path: {float: [0.0, 0.2], when: {no: true}}}\n",
    )
    assert space.cardinality() == 1


def test_enumerate_limit(spaces):
    with pytest.raises(SpaceError, match="limited to 100"):
        next(spaces["tiny"].enumerate(limit=100))


# ---------------------------------------------------------------------- Optuna
@pytest.mark.parametrize("name", ALL)
def test_optuna_fixed_trial_rebuilds_the_same_candidate(spaces, name):
    space = spaces[name]
    rng = np.random.default_rng(9)
    for _ in range(40):
        params = space.sample(rng).params  # a valid point
        encoded = space.optuna_params(params)
        assert all(isinstance(v, (bool, int, float, str)) for v in encoded.values())
        rebuilt = space.suggest(optuna.trial.FixedTrial(encoded))
        assert rebuilt == params
        assert space.to_sample(rebuilt).id == space.to_sample(params).id


@pytest.mark.parametrize("name", ["seeds", "continuous"])
def test_optuna_define_by_run(spaces, name):
    space = spaces[name]
    kinds = {d.name: d.kind for d in space.dims}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    queued = space.sample_params(np.random.default_rng(10))
    study.enqueue_trial(space.optuna_params(queued))
    for i in range(25):
        trial = study.ask()
        params = space.suggest(trial)
        if i == 0:
            assert params == queued
        _present_iff_active(space, params)
        suggested = {k for k in params if kinds[k] not in ("fixed", "derive")}
        assert set(trial.params) == suggested  # only active, non-fixed, non-derived dims
        assert space.optuna_params(params) == trial.params
        study.tell(trial, float(i))
    assert len(study.trials) == 25


# ---------------------------------------------------------------------- errors
# (id, YAML text or None for a missing file, key path (a regex), fragments of the message)
ERROR_CASES = [
    ("yaml_syntax", "space:\n  macro: {choice: [plain, revcol]\n", r"line \d+, column \d+", ["YAML syntax error"]),
    ("yaml_tab", "space:\n\tmacro: plain\n", r"line 2, column 1", ["YAML syntax error", "'\\t'"]),
    ("yaml_control_char", "space:\n  macro: plain\x07\n", r"character \d+", ["YAML syntax error", "#x0007"]),
    ("not_a_mapping", "- space\n", "<root>", ["expected a mapping", "got list"]),
    ("unknown_top_key", "spcae: {}\n", "spcae", ["unknown top-level key", "did you mean 'space'"]),
    ("unknown_space_key", "space: {macr: plain}\n", "space.macr", ["unknown dimension", "did you mean 'macro'"]),
    ("unknown_stage_key", "space: {stage: {kernal: 3}}\n", "space.stage.kernal", ["did you mean 'kernel'"]),
    ("wrong_type", "data: {image_size: big}\n", "data.image_size", ["expected an integer", "'big'"]),
    ("wrong_type_stages", "stages: four\n", "stages", ["integer >= 1", "'four'"]),
    ("wrong_type_section", "space: [macro]\n", "space", ["expected a mapping", "list"]),
    ("empty_choice", "space: {width: {choice: []}}\n", "space.width.choice", ["non-empty list", "[]"]),
    ("even_kernel", "space: {stage: {kernel: {choice: [4, 7]}}}\n", "space.stage.kernel", ["expected odd integers >= 3", "got [4, 7]"]),
    ("even_kernel_fixed", "space: {stage: {kernel: [3, 5, 7, 4]}}\n", r"space.stage.kernel\[3\]", ["odd integers >= 3", "[4]"]),
    ("bad_mixer", "space: {stage: {mixer: {choice: [static, attn]}}}\n", "space.stage.mixer", ["one of ['static'", "'attn'"]),
    ("when_unknown_dim", "space: {macro: {choice: [plain, revcol]}, columns: {choice: [2, 4], when: {macr: revcol}}}\n", "space.columns.when.macr", ["unknown dimension 'macr'", "did you mean 'macro'"]),
    ("when_unknown_value", "space: {macro: {choice: [plain, revcol]}, columns: {choice: [2, 4], when: {macro: revcl}}}\n", "space.columns.when.macro", ["'revcl' is not a value of macro", "['plain', 'revcol']"]),
    ("when_value_outside_range", "space: {width: {int: [16, 64], step: 16}, grn: {choice: [true], when: {width: 20}}}\n", "space.grn.when.width", ["20 is not a value of width", "[16, 32, 48, 64]"]),
    ("derive_cycle", "space: {vars: {a: {derive: 'b + 1'}, b: {derive: 'a * 2'}}}\n", r"space.vars.[ab]", ["circular dependency", "vars.a -> vars.b", "vars.b -> vars.a"]),
    ("when_cycle", "space: {grn: {choice: [true, false], when: {macro: plain}}, macro: {choice: [plain, revcol], when: {grn: true}}}\n", r"space.(grn|macro)", ["circular dependency"]),
    ("derive_unknown_name", "space: {layer_scale: {derive: '0.0 if gnr else 1.0e-6'}, grn: true}\n", "space.layer_scale.derive", ["unknown dimension 'gnr'", "did you mean 'grn'"]),
    ("derive_syntax", "space: {layer_scale: {derive: '0.0 if'}}\n", "space.layer_scale.derive", ["invalid expression"]),
    ("derive_forbidden", "space: {layer_scale: {derive: '__import__(\"os\")'}}\n", "space.layer_scale.derive", ["unknown function '__import__'"]),
    ("constraints_lo_gt_hi", "constraints: {params_m: [5, 1]}\n", "constraints.params_m", ["contradicting bounds", "lo 5 > hi 1"]),
    ("constraints_negative", "constraints: {macs_m: [null, -3]}\n", "constraints.macs_m", ["contradicting bounds", "hi -3 < 0"]),
    ("constraint_unknown_column", "constraints: {val_acc: [0.5, 1]}\n", "constraints.val_acc", ["unknown cost column", "'params_m'"]),
    ("constraint_bad_window", "constraints: {params_m: 5}\n", "constraints.params_m", ["[lo, hi]", "got 5"]),
    ("stage_list_length", "space: {stage: {kernel: [3, 5, 7]}}\n", "space.stage.kernel", ["list of 4 per-stage values", "got 3"]),
    ("depths_list_length", "space: {depths: {choice: [[1, 1, 2]]}}\n", "space.depths", ["list of 4 integers >= 1", "[1, 1, 2]"]),
    ("missing_file", None, "<file>", ["no such file"]),
    ("objective_sense", "objectives: {val_acc: maximize}\n", "objectives.val_acc", ["'max' or 'min'", "'maximize'"]),
    ("objective_column", "objectives: {val_accuracy: max}\n", "objectives.val_accuracy", ["unknown column", "did you mean 'val_acc'"]),
    ("int_range_lo_gt_hi", "space: {width: {int: [64, 16]}}\n", "space.width.int", ["lo < hi", "[64, 16]"]),
    ("int_range_not_ints", "space: {width: {int: [16.5, 32]}}\n", "space.width.int", ["integers", "[16.5, 32]"]),
    ("int_range_bad_step", "space: {width: {int: [16, 64], step: 0}}\n", "space.width.step", ["integer >= 1", "got 0"]),
    ("int_range_huge", "space: {num_classes: {int: [1, 100000000000000000000]}}\n", "space.num_classes.int", ["2**53"]),
    ("log_range_lo_zero", "space: {drop_path: {float: [0.0, 0.5], log: true}}\n", "space.drop_path.log", ["lo > 0", "got 0.0"]),
    ("log_range_lo_negative", "space: {train: {lr: {float: [-1.0, 1.0], log: true}}}\n", "space.train.lr.log", ["lo > 0", "got -1.0"]),
    ("float_range_infinite", "space: {train: {lr: {float: [0.1, .inf]}}}\n", "space.train.lr.float", ["[lo, hi]", "inf"]),
    ("unknown_dim_option", "space: {macro: {choice: [plain, revcol], wen: {grn: true}}}\n", "space.macro.wen", ["unknown option", "did you mean 'when'"]),
    ("two_kinds", "space: {width: {choice: [16], int: [16, 32]}}\n", "space.width", ["exactly one of", "['choice', 'int']"]),
    ("tie_outside_stage", "space: {width: {choice: [16, 32], tie: true}}\n", "space.width.tie", ["per-stage"]),
    ("unknown_dataset", "data: {dataset: imagenet}\n", "data.dataset", ["unknown data set 'imagenet'", "'digits'"]),
    ("unknown_train_key", "space: {train: {lrate: {choice: [0.1]}}}\n", "space.train.lrate", ["unknown training setting"]),
    ("unknown_sampler", "sampler: tpee\n", "sampler", ["did you mean 'tpe'", "'nsga2'"]),
    ("bad_base_path", "base: presets/nope.yaml\n", "base", ["nope.yaml", "cannot read"]),
    ("bad_base_fields", "base: {block: replk, norm: ln}\n", "base", ["norm:", "'ln' is only available"]),
    ("bad_base_value", "base: {depths: [.inf, 1, 1, 1]}\n", "base", ["depths:", "inf"]),
    ("stages_mismatch", "stages: 3\nspace: {stage: {depth: {choice: [1, 2]}}}\n", "stages", ["expected 4", "got 3"]),
]  # fmt: skip
assert len(ERROR_CASES) >= 15


def write_case(tmp_path: Path, case_id: str, text: str | None) -> Path:
    path = tmp_path / f"{case_id}.yaml"
    if text is not None:
        path.write_text(text)
    return path


def check_message(message: str, path: Path, key_re: str, fragments: list[str]) -> None:
    """One line: ``<file>: <key path>: <what was found and what is allowed>``."""
    assert "\n" not in message and "Traceback" not in message
    match = re.match(rf"{re.escape(str(path))}: ({key_re}): \S", message)
    assert match, (key_re, message)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize(
    ("case_id", "text", "key_re", "fragments"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_space_errors(tmp_path, case_id, text, key_re, fragments):
    path = write_case(tmp_path, case_id, text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    err = info.value
    assert isinstance(err, UserError) and isinstance(err, ValueError)
    assert err.source == str(path) and re.fullmatch(key_re, err.key_path)
    check_message(str(err), path, key_re, fragments)


def test_attention_mixers_on_a_base_without_attention(tmp_path):
    # the default base has no attention (canonical head_dim 0); sampled attention stages get the
    # default head_dim instead of failing on "head_dim 0"
    space = _space(tmp_path, "space: {stage: {mixer: [static, static, static, dynamic]}}\n")
    assert space.base.head_dim == 0
    s = space.sample(np.random.default_rng(0))
    assert s.candidate.mixers[3] == "dynamic" and s.candidate.head_dim == Candidate.head_dim


def test_a_campaign_copy_of_a_space_stands_alone(tmp_path):
    """The campaign folder's space.yaml names its base by value: it loads anywhere, as the same
    space (a relative base path broke nas resume and nas replay before)."""
    import shutil

    from nas.campaign.table import campaign_space
    from nas.space.parse import portable_space_text

    src = tmp_path / "src"
    (src / "presets").mkdir(parents=True)
    shutil.copy(ROOT / "spaces" / "presets" / "convnextv2_atto.yaml", src / "presets")
    text = (ROOT / "spaces" / "quickstart.yaml").read_text()
    (src / "q.yaml").write_text(text)
    folder = tmp_path / "campaign"
    folder.mkdir()
    (folder / "space.yaml").write_text(portable_space_text(src / "q.yaml"))
    original = load_space(src / "q.yaml")
    shutil.rmtree(src)
    copy = campaign_space(folder)
    assert copy.base.id == original.base.id and copy.measure == original.measure
    assert [(d.name, d.kind, d.values) for d in copy.dims] == [
        (d.name, d.kind, d.values) for d in original.dims
    ]
    # a copy written the old way (verbatim, relative base) loads from the recorded original
    (src / "presets").mkdir(parents=True)
    shutil.copy(ROOT / "spaces" / "presets" / "convnextv2_atto.yaml", src / "presets")
    (folder / "space.yaml").write_text(text)
    (folder / "campaign.json").write_text(json.dumps({"space": str(src / "q.yaml")}))
    (src / "q.yaml").write_text(text)
    assert campaign_space(folder).base.id == original.base.id
    (src / "q.yaml").unlink()
    with pytest.raises(SpaceError, match="base"):
        campaign_space(folder)


def test_epochs_zero_measures_only_and_refuses_what_needs_training():
    space = parse_space({"train": {"epochs": 0}, "objectives": {"params_m": "min"}})
    assert space.train["epochs"] == 0
    with pytest.raises(SpaceError, match=r"^<space>: objectives: \['val_acc'\] need training"):
        parse_space({"train": {"epochs": 0}, "objectives": {"val_acc": "max"}})
    with pytest.raises(SpaceError, match=r"^<space>: pretrain.method: pre-training needs"):
        parse_space({"train": {"epochs": 0}, "pretrain": {"method": "fcmae"}})
    with pytest.raises(SpaceError, match=r"^<space>: train.epochs: .*an integer >= 0"):
        parse_space({"train": {"epochs": -1}})
