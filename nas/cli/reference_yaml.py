"""The YAML reference of the documentation site, generated from the rule tables so it cannot
drift: the space language's keys (``nas.space.parse.TOP_KEYS``, ``nas.space.dims.CHECKS``,
``nas.space.dimparse``), every ``*_RULES`` table of ``nas.settings`` with its defaults, the runner
keys of ``nas.campaign.runner`` and the vocabularies of ``nas.vocab``. A key added to any of them
appears in the site at its next build; one without a sentence below says so."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.cli.reference import GENERATED, md_escape

__all__ = ["RUNNER_LATENCY_KEYS", "rule_tables", "runner_keys", "yaml_reference", "yaml_value"]

# What each key means, where its rule table says only what it accepts. A key without a line here
# is still listed (with what it accepts and its default).
TOP_MEANINGS = {
    "name": "campaign-friendly name (default: the file name)",
    "description": "free text",
    "base": "the candidate the space starts from: a preset path relative to this file, or a mapping",
    "stages": "number of stages (default: the base's)",
    "data": "the data set (the `data:` table below)",
    "train": "training settings (the `train:` table below)",
    "pretrain": "FCMAE masked pre-training before training (the `pretrain:` table below)",
    "measure": "what a trial measures besides cost and accuracy (the `measure:` table below)",
    "objectives": "`{column: max}` or `{column: min}` per objective, over the measured columns (`COLUMNS` below) or any table column",
    "constraints": "`{cost column: [lo, hi]}` checked before training; null = unbounded",
    "sampler": "the search sampler (default tpe; vocabulary below)",
    "space": "the dimensions: candidate fields, `width`, `stage:`, `vars:`, `train:`, `pretrain:`",
}
RUNNER_MEANINGS = {
    "name": "the profile's name (default: local)",
    "address": "null: start a local Ray; `auto`: join the running cluster; `HOST:PORT` or "
    "`ray://HOST:PORT`. `RAY_ADDRESS` overrides it",
    "num_cpus": "CPUs of a local Ray (default: every core)",
    "cpus_per_trial": "CPUs of one trial",
    "gpus_per_trial": "GPUs of one trial (fractions share a GPU)",
    "max_concurrent": "trials at once; null: as many as the cluster's resources allow",
    "max_failures": "retries of a trial whose worker or node died (`tune.FailureConfig`)",
    "reuse_actors": "reuse trial actors (halves the per-trial overhead)",
    "storage_path": "Ray experiment storage (default `results/<campaign>/ray`): a path every "
    "node reaches or a URI Ray accepts (`s3://`, `gs://`, `file://`)",
    "latency": "a policy (below) or a mapping of the `latency:` keys (below)",
    "memory": "`{batch: N}`: training memory is measured at this batch (default: the training "
    "batch)",
    "sampler": "overrides the space's sampler (search)",
    "scheduler": "early stopping on val_acc (search)",
    "device": "`cpu` or `cuda`",
    "object_store_mb": "object store of a local Ray, MiB",
    "connect_timeout_s": "an unreachable cluster fails within this time",
    "wait_for_resources_s": "trials pending and no live node fits one (the cluster shrank): stop "
    "after this long, exit 3 (`nas resume` continues); null waits forever (an autoscaler)",
    "status_interval_s": "a status line whenever this long passed without a line",
    "auth": "Ray token authentication (`token`, the default) or `disabled` (warned each run); "
    "see Clusters and storage, Security",
}
LATENCY_MEANINGS = {
    "mode": "the policy: auto / service (the campaign's latency service), inline (timed in the "
    "trial), off, predict (latency_pred_ms from `model`, nothing timed)",
    "reference": "candidate YAML timed in the same rounds for latency_rel (default: the space's "
    "base candidate; off: none)",
    "model": "mode predict: the latency model JSON (`nas latency-model fit`)",
    "cpus": "CPUs the service reserves (default: its threads)",
    "gpus": "GPUs the service reserves (default 1 with `device: cuda`, else 0)",
    "threads": "threads pinned while timing",
    "resources": "extra Ray resources that place the service, e.g. `{latency_node: 1}` (default none)",
    "batch": "batch of the timed forward",
    "dtype": "autocast dtype on CUDA",
    "channels_last": "time in channels_last layout",
    "warmup_s": "seconds of untimed forwards before the rounds",
    "rounds": "timed rounds at least (>= 3: the median's interval needs three); fewer rounds "
    "measure sooner and noisier (the row's interval says how noisy)",
    "max_rounds": "timed rounds at most, while the interval is wider than max_ci",
    "max_ci": "re-time while the interval's half-width exceeds this fraction of the median",
}
# runner key -> its Runner field, where the names differ
RUNNER_LATENCY_KEYS = {"mode": "latency", "threads": "latency_threads_"}


def rule_tables() -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Every rule table of ``nas.settings`` (``NAME_RULES``): its YAML section -> (the table's
    name, the table). A table added there appears in the reference without further work."""
    from nas import settings

    sections = {"DATA": "data", "TRAIN": "train", "PRETRAIN": "pretrain", "MEASURE": "measure"}
    order = list(sections)
    out = {}
    for name in sorted(
        dir(settings), key=lambda n: (order.index(n[:-6]) if n[:-6] in order else 9, n)
    ):
        table = getattr(settings, name)
        if name.endswith("_RULES") and isinstance(table, Mapping):
            stem = name[: -len("_RULES")]
            out[sections.get(stem, stem.lower())] = (name, table)
    return out


def runner_keys() -> tuple[dict[str, tuple], tuple[str, ...]]:
    """The runner profile's keys (key -> accepted types) and its ``latency:`` mapping's keys."""
    from nas.campaign import runner

    return dict(runner._FIELDS), tuple(runner.LATENCY_KEYS)  # noqa: SLF001 - the rule table


def _dataclass_defaults(module: str, cls: str) -> dict[str, str]:
    """A dataclass's field defaults, read from its source without importing it (the trainer's
    module imports torch, which a docs build does not need)."""
    # the file itself: find_spec would import the parent package (nas.train imports torch)
    path = _NAS.joinpath(*module.split(".")[1:]).with_suffix(".py")
    if not path.is_file():
        return {}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    if item.value is not None:
                        try:
                            out[item.target.id] = yaml_value(ast.literal_eval(item.value))
                        except ValueError:
                            out[item.target.id] = ast.unparse(item.value)
    return out


def yaml_value(value: Any) -> str:
    """A default as YAML writes it: null, true/false, lists; blank for an empty tuple."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]" if value else ""
    return str(value)


_NAS = Path(__file__).resolve().parents[1]  # the nas package folder
# where a section's defaults live when it has no NAME_DEFAULTS table: a dataclass (module, class)
_SECTION_DEFAULTS = {
    "data": ("nas.train.config", "DataConfig"),
    "train": ("nas.train.trainer", "TrainConfig"),
    "pretrain": ("nas.pretrain.loop", "PretrainConfig"),
}


def _section_defaults(section: str, table_name: str) -> dict[str, str]:
    from nas import settings

    table = getattr(settings, table_name.replace("_RULES", "_DEFAULTS"), None)
    if isinstance(table, Mapping):
        return {k: yaml_value(v) for k, v in table.items()}
    if section in _SECTION_DEFAULTS:
        return _dataclass_defaults(*_SECTION_DEFAULTS[section])
    return {}


def _table(header: str, rows: list[tuple[str, ...]]) -> list[str]:
    cols = header.count("|") - 1
    out = [header, "|" + " --- |" * cols]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return [*out, ""]


def _settings_lines() -> list[str]:
    out = [
        "## Settings sections",
        "",
        "The `data:`, `train:`, `pretrain:` and `measure:` sections of a space (and the "
        "`space: {train: ..., pretrain: ...}` dimensions) are checked against these tables; the "
        "data sets, the trainer and the pre-training loop read the same tables.",
        "",
    ]
    for section, (name, rules) in rule_tables().items():
        defaults = _section_defaults(section, name)
        out += [f"### `{section}:`", "", f"From `nas.settings.{name}`.", ""]
        rows = [
            (f"`{key}`", md_escape(allowed), md_escape(defaults.get(key, "")))
            for key, (_, allowed) in rules.items()
        ]
        out += _table("| key | accepted | default |", rows)
    return out


def _space_lines() -> list[str]:
    from nas.space.dimparse import DIM_OPTIONS, KINDS, SETTINGS_DIMS
    from nas.space.dims import CHECKS, FREE_KEYS, STAGE_KEYS
    from nas.space.parse import TOP_KEYS
    from nas.vocab import STAGE_FIELDS

    out = ["## Design-space files (`spaces/*.yaml`)", "", "### Top-level keys", ""]
    out += _table(
        "| key | what it holds |",
        [(f"`{k}`", TOP_MEANINGS.get(k, "")) for k in TOP_KEYS],
    )
    out += ["### Dimension forms", "", "Every entry under `space:` is a plain value or a mapping "]
    out[-1] += "with exactly one of these forms:"
    out += ["", ", ".join(f"`{k}`" for k in KINDS), ""]
    out += ["and any of these options: " + ", ".join(f"`{k}`" for k in DIM_OPTIONS) + ".", ""]
    out += ["### Candidate fields", ""]
    out += [
        "The names a space may vary at its top level (`space: {name: ...}`) and the fields of a "
        "candidate file (`spaces/presets/*.yaml`), with the values each accepts. Also accepted "
        "under `space:`: `width` (a base width doubled per stage), `stage:` (per-stage "
        "dimensions, below), `vars:` (helper variables) and the settings sections "
        + ", ".join(f"`{s}:`" for s in SETTINGS_DIMS)
        + ".",
        "",
    ]
    per_stage = {plural: single for plural, single in STAGE_FIELDS.items()}
    rows = []
    for key in sorted(FREE_KEYS):
        note = f" (one per stage; `stage.{per_stage[key]}` samples it)" if key in per_stage else ""
        rows.append((f"`{key}`", md_escape(CHECKS[key][0]) + note))
    out += _table("| field | accepted |", rows)
    out += ["### Per-stage dimensions (`space.stage:`)", ""]
    out += _table(
        "| key | accepted |", [(f"`{k}`", md_escape(CHECKS[k][0])) for k in sorted(STAGE_KEYS)]
    )
    return out


def _runner_default(key: str, defaults: Mapping[str, Any], latency: bool = False) -> str:
    from nas.campaign.runner import TIMING_KEYS
    from nas.measure.latency import LatencyProtocol

    if latency and key in TIMING_KEYS:  # unset: the timing protocol's own default
        return md_escape(yaml_value(getattr(LatencyProtocol, key)))
    field = RUNNER_LATENCY_KEYS.get(key, f"latency_{key}") if latency else key
    if field not in defaults:
        return ""
    return md_escape(yaml_value(defaults[field]))


def _runner_lines() -> list[str]:
    from nas.campaign.runner import DTYPES, LATENCY_POLICIES, SCHEDULERS, Runner
    from nas.vocab import SAMPLERS

    defaults = {f.name: f.default for f in dataclasses.fields(Runner)}
    fields, latency_keys = runner_keys()
    accepted = {"scheduler": SCHEDULERS, "sampler": SAMPLERS, "latency": LATENCY_POLICIES}
    accepted = {k: "; one of " + ", ".join(f"`{v}`" for v in vs if v) for k, vs in accepted.items()}
    out = ["## Runner profiles (`runners/*.yaml`)", "", "From `nas.campaign.runner`. "]
    out[-1] += "Every key is optional; an unknown key is one line naming it (exit 2)."
    out.append("")
    rows = [
        (
            f"`{key}`",
            md_escape(" or ".join("null" if t is type(None) else t.__name__ for t in types)),
            _runner_default(key, defaults),
            md_escape(RUNNER_MEANINGS.get(key, "")) + accepted.get(key, ""),
        )
        for key, types in fields.items()
    ]
    out += _table("| key | type | default | meaning |", rows)
    out += ["### `latency:`", ""]
    out += [
        "A policy, one of " + ", ".join(f"`{p}`" for p in LATENCY_POLICIES) + ", or a mapping "
        "of these keys (dtypes: " + ", ".join(f"`{d}`" for d in DTYPES) + "):",
        "",
    ]
    rows = [
        (
            f"`{key}`",
            _runner_default(key, defaults, latency=True),
            md_escape(LATENCY_MEANINGS.get(key, "")),
        )
        for key in latency_keys
    ]
    out += _table("| key | default | meaning |", rows)
    return out


def _vocab_lines() -> list[str]:
    from nas import vocab

    out = ["## Vocabularies (`nas.vocab`)", "", "Every name the files above may use, defined once."]
    out.append("")
    for name in vocab.__all__:
        value = getattr(vocab, name)
        if isinstance(value, Mapping):
            out += [f"### `{name}`", ""]
            out += _table(
                "| name | value |",
                [(f"`{k}`", md_escape(str(v))) for k, v in value.items()],
            )
        else:
            out += [f"### `{name}`", "", ", ".join(f"`{v}`" for v in value), ""]
    return out


def yaml_reference() -> str:
    """The YAML reference page (Markdown): design-space keys, the settings sections, runner
    profiles and the vocabularies."""
    out = [
        "# YAML reference",
        "",
        GENERATED.format(
            src="the rule tables (`nas.settings`, `nas.space`, `nas.campaign.runner`, `nas.vocab`)",
            what="every key the parsers accept and what each accepts",
        ),
        "",
        "How the language reads (dimension forms, conditions, per-stage values, derived values) "
        "is explained in [Design spaces](../design-spaces.md); this page is the list.",
        "",
    ]
    out += _space_lines() + _settings_lines() + _runner_lines() + _vocab_lines()
    return "\n".join(out)
