"""The Candidate: one architecture of the design space, as a frozen value.

A Candidate is the one object that travels between sampling, building, measuring, training and
the campaign table. It is hashable, picklable and round-trips exactly through three forms:

* flat dotted params (``to_params`` / ``from_params``): scalars by field name and per-stage
  values as ``stage.<i>.<name>`` (e.g. ``stage.2.kernel``); this is the form of a table row;
* a nested dict / JSON (``to_dict`` / ``to_json``): per-stage values as lists;
* YAML (``to_yaml`` / ``load_candidate``): the same dict, the format of ``spaces/presets/*.yaml``.

Values that cannot matter are canonicalised (e.g. the kernel of a stage without a depthwise conv,
``columns`` of a plain net), so two candidates that build the same network have the same ``id``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.documents import DocumentError, read_yaml
from nas.errors import did_you_mean
from nas.space.checks import (
    CandidateError,
    check_bool,
    check_float,
    check_int,
    check_name,
    is_finite,
    split_params,
)
from nas.vocab import (
    ATTENTION_MIXERS,
    BLOCKS,
    DW_MIXERS,
    GLOBAL_MIXERS,
    MACROS,
    MIXERS,
    NORMS,
    REVCOL_ALPHAS,
    STAGE_FIELDS,
)

__all__ = ["Candidate", "CandidateError", "load_candidate"]

_LATER_DEFAULTS = {"revcol_alpha": "bounded"}  # field -> default, for ids (see to_json)


@dataclass(frozen=True)
class Candidate:
    """One architecture. Defaults are ConvNeXt V2-Atto at 224x224 with 1000 classes.

    Attributes:
        macro: ``plain`` (stem, stages with downsampling, head) or ``revcol`` (RevCol columns).
        block: block style of every stage: ``convnext`` (ConvNeXt V1/V2), ``replk`` (RepLKNet
            block + ConvFFN pairs) or ``container`` (Container CBlock/MixBlock).
        depths, widths: blocks and channels per stage (per RevCol level for ``revcol``).
        kernels: depthwise kernel per stage (odd >= 3; 0 where the mixer has no depthwise conv).
        small_kernels: re-param branch kernel per stage (0 = none; odd, smaller than the kernel).
        mixers: token mixing per stage (Container): ``static`` depthwise conv, ``dynamic``
            attention, ``mixed`` sigmoid-gated blend of both, ``static_global`` learnable NxN.
        mlp_ratios: hidden expansion of each stage's MLP.
        columns, reversible, inter_supervision: RevCol switches (canonical 1/False/False when plain).
        revcol_alpha: ``official`` (the official raw alpha: |alpha| clamped to >= 1e-3 with its
            sign kept, weight decay applied) or ``bounded`` (0.25 + softplus(theta), no decay).
        stem, downsample, head: which paper's stem / transition / head (default: the block's).
        norm: block normalisation, ``ln`` or ``bn`` (default: LayerNorm for convnext, BN otherwise).
        grn: ConvNeXt V2 Global Response Normalization in every expanded MLP.
        layer_scale: LayerScale init value; 0 turns it off (V1: 1e-6, V2 with GRN: 0).
        head_dim: channels per attention head (canonical 0 when no stage uses attention).
        dw_ratio: RepLK block's 1x1 expansion before the large kernel (canonical 1 otherwise).
        drop_path: stochastic depth, linearly increasing to this rate over the blocks.
    """

    macro: str = "plain"
    block: str = "convnext"
    depths: tuple[int, ...] = (2, 2, 6, 2)
    widths: tuple[int, ...] = (40, 80, 160, 320)
    kernels: tuple[int, ...] = (7, 7, 7, 7)
    small_kernels: tuple[int, ...] = (0, 0, 0, 0)
    mixers: tuple[str, ...] = ("static", "static", "static", "static")
    mlp_ratios: tuple[float, ...] = (4.0, 4.0, 4.0, 4.0)
    columns: int = 1
    reversible: bool = False
    inter_supervision: bool = False
    revcol_alpha: str = "bounded"
    stem: str | None = None
    downsample: str | None = None
    head: str | None = None
    norm: str | None = None
    grn: bool = True
    layer_scale: float = 0.0
    head_dim: int = 32
    dw_ratio: float = 1.0
    drop_path: float = 0.0
    num_classes: int = 1000
    image_size: int = 224
    in_chans: int = 3

    # ------------------------------------------------------------------ construction
    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("macro", "block"):
            check_name(name, getattr(self, name), MACROS if name == "macro" else BLOCKS)
        for name in ("stem", "downsample", "head"):
            value = getattr(self, name)
            set_(self, name, self.block if value is None else value)
            check_name(name, getattr(self, name), BLOCKS)
        set_(
            self,
            "norm",
            ("ln" if self.block == "convnext" else "bn") if self.norm is None else self.norm,
        )
        check_name("norm", self.norm, NORMS)
        check_name("revcol_alpha", self.revcol_alpha, REVCOL_ALPHAS)
        for name in ("reversible", "inter_supervision", "grn"):
            check_bool(name, getattr(self, name))
        for name in ("columns", "head_dim", "num_classes", "image_size", "in_chans"):
            set_(
                self, name, check_int(name, getattr(self, name), lo=0 if name == "head_dim" else 1)
            )
        for name in ("layer_scale", "dw_ratio", "drop_path"):
            set_(self, name, check_float(name, getattr(self, name)))
        self._normalise_stages()
        self._canonicalise()
        self._validate()

    def _normalise_stages(self) -> None:
        n = len(self.depths) if isinstance(self.depths, (list, tuple)) else 0
        if n < 1:
            raise CandidateError(
                "depths", f"expected a non-empty list of positive integers, got {self.depths!r}"
            )
        for name in STAGE_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)):
                raise CandidateError(
                    name, f"expected a list of {n} values (one per stage), got {value!r}"
                )
            if len(value) != n:
                raise CandidateError(
                    name,
                    f"expected {n} values (one per stage, as in depths), got {len(value)}: {list(value)!r}",
                )
            if name == "mixers":
                for v in value:
                    check_name(name, v, MIXERS)
                norm = tuple(value)
            elif name == "mlp_ratios":
                norm = tuple(check_float(name, v) for v in value)
            else:
                norm = tuple(
                    check_int(name, v, lo=0 if name in ("kernels", "small_kernels") else 1)
                    for v in value
                )
            object.__setattr__(self, name, norm)

    def _canonicalise(self) -> None:
        """Set values that cannot affect the network to one canonical value (dedupe by id)."""
        set_ = object.__setattr__
        if self.macro == "plain":
            set_(self, "columns", 1)
            set_(self, "reversible", False)
            set_(self, "inter_supervision", False)
            set_(self, "revcol_alpha", "bounded")
        else:  # RevCol has its own stem (patchify), fusion unit (no transitions) and head.
            for name in ("stem", "downsample", "head"):
                set_(self, name, "convnext")
        no_dw = [m not in DW_MIXERS for m in self.mixers]
        set_(self, "kernels", tuple(0 if nd else k for nd, k in zip(no_dw, self.kernels)))
        set_(
            self, "small_kernels", tuple(0 if nd else k for nd, k in zip(no_dw, self.small_kernels))
        )
        if not any(m in ATTENTION_MIXERS for m in self.mixers):
            set_(self, "head_dim", 0)
        if self.block != "replk":
            set_(self, "dw_ratio", 1.0)

    def _validate(self) -> None:
        for i, (k, s, m) in enumerate(zip(self.kernels, self.small_kernels, self.mixers)):
            if m in DW_MIXERS and (k < 3 or k % 2 == 0):
                raise CandidateError(f"kernels[{i}]", f"expected an odd integer >= 3, got {k}")
            if s and (s % 2 == 0 or s >= k):
                raise CandidateError(
                    f"small_kernels[{i}]",
                    f"expected 0 (no re-param branch) or an odd integer smaller than the kernel {k}, got {s}",
                )
        if any(m in ATTENTION_MIXERS for m in self.mixers):
            if self.head_dim < 1:
                raise CandidateError(
                    "head_dim",
                    f"expected a positive integer for attention mixers, got {self.head_dim}",
                )
            for i, (w, m) in enumerate(zip(self.widths, self.mixers)):
                if self.block == "replk":  # the RepLK mixer acts on the dw_ratio expansion
                    w = int(w * self.dw_ratio)
                if m in ATTENTION_MIXERS and w % self.head_dim:
                    raise CandidateError(
                        f"widths[{i}]",
                        f"mixer {m!r} needs a width{' x dw_ratio' if self.block == 'replk' else ''} divisible by head_dim={self.head_dim}, got {w}",
                    )
        for i, m in enumerate(self.mixers):
            if m in GLOBAL_MIXERS and self.image_size % self.stage_stride(i):
                raise CandidateError(
                    f"mixers[{i}]",
                    f"{m!r} needs a fixed token grid: image_size {self.image_size} "
                    f"must be divisible by the stage stride {self.stage_stride(i)}",
                )
        for i, (w, r) in enumerate(zip(self.widths, self.mlp_ratios)):
            try:
                hidden = w * r
            except OverflowError:  # an int width too large for a float
                hidden = math.inf
            if r <= 0 or not is_finite(hidden) or int(hidden) < 1:
                raise CandidateError(f"mlp_ratios[{i}]", f"expected a positive ratio, got {r}")
        if self.block != "convnext" and self.norm != "bn":
            raise CandidateError(
                "norm",
                f"block {self.block!r} uses BatchNorm (re-param folds it); 'ln' is only available for block 'convnext'",
            )
        if not 0.0 <= self.drop_path < 1.0:
            raise CandidateError("drop_path", f"expected a rate in [0, 1), got {self.drop_path}")
        if self.layer_scale < 0:
            raise CandidateError(
                "layer_scale", f"expected 0 (off) or a positive init value, got {self.layer_scale}"
            )
        if self.dw_ratio <= 0:
            raise CandidateError("dw_ratio", f"expected a positive ratio, got {self.dw_ratio}")
        if self.macro == "revcol" and self.inter_supervision and self.columns < 2:
            raise CandidateError(
                "inter_supervision", "needs at least 2 columns (heads after columns)"
            )
        min_size = self.stage_stride(self.num_stages - 1)
        if self.image_size < min_size:
            raise CandidateError(
                "image_size",
                f"expected at least {min_size} (the last stage's stride), got {self.image_size}",
            )

    # ------------------------------------------------------------------ derived facts
    @property
    def num_stages(self) -> int:
        return len(self.depths)

    def stage_stride(self, i: int) -> int:
        """Total stride at stage ``i``: 4 after the stem, x2 per later stage (4, 8, 16, 32)."""
        return 4 * 2**i

    def stage_tokens(self, i: int) -> int:
        """Tokens (H*W) of stage ``i`` at ``image_size`` (exact when the stride divides it)."""
        return (self.image_size // self.stage_stride(i)) ** 2

    @property
    def id(self) -> str:
        """Stable short id: sha1 of the canonical JSON, 12 hex digits (process-independent)."""
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def to_json(self) -> str:
        """The canonical JSON the id hashes. Fields added after the first release are left out
        while at their default, so every earlier candidate keeps its id (and run keys)."""
        d = {k: v for k, v in self.to_dict().items() if _LATER_DEFAULTS.get(k, ...) != v}
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def to_params(self) -> dict[str, Any]:
        """Flat dotted params: scalars by name, per-stage values as ``stage.<i>.<name>``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in STAGE_FIELDS:
                for i, x in enumerate(v):
                    out[f"stage.{i}.{STAGE_FIELDS[f.name]}"] = x
            else:
                out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        if not isinstance(data, Mapping):
            raise CandidateError(
                "<candidate>", f"expected a mapping of fields, got {type(data).__name__}"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise CandidateError(
                unknown[0],
                f"unknown field{did_you_mean(unknown[0], names)}; expected one of {sorted(names)}",
            )
        return cls(**dict(data))

    @classmethod
    def from_json(cls, text: str) -> Candidate:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Candidate:
        """The candidate of a campaign-table row (its ``arch.<param>`` cells; empty cells skip)."""
        params = {}
        for key, value in row.items():
            if not str(key).startswith("arch.") or value is None:
                continue
            if isinstance(value, float) and math.isnan(value):
                continue
            params[key[len("arch.") :]] = value.item() if hasattr(value, "item") else value
        return cls.from_params(params)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, base: Candidate | None = None) -> Candidate:
        """Build from flat params; unspecified fields come from ``base`` (default: the defaults).

        Accepted keys: field names (a per-stage field may be given as a whole list, e.g.
        ``depths``), ``stage.<i>.<name>`` for one stage, ``stage.<name>`` for all stages (tied),
        and ``width`` as a base width that doubles per stage (``widths = width * 2**i``).
        """
        data = (base or cls()).to_dict()
        per_stage = split_params(params, data)
        if data["head_dim"] == 0 and "head_dim" not in params:
            data["head_dim"] = cls.head_dim  # the base's canonical 0 means "no attention": default
        n = len(data["depths"]) if isinstance(data["depths"], list) else 0
        # Params that give every per-stage field for exactly stages 0..m-1 (``to_params()`` of an
        # m-stage candidate) define an m-stage network, whatever the number of stages of the base.
        spans = {
            len(idx) if idx and idx == set(range(len(idx))) else None
            for idx in (set(per_stage.get(name, ())) for name in STAGE_FIELDS)
        }
        if len(spans) == 1 and None not in spans:
            n = spans.pop()
        for name, entries in per_stage.items():
            values = (
                list(data[name])
                if isinstance(data[name], list) and len(data[name]) == n
                else [data[name]] * n
            )
            if -2 in entries:  # base width
                w = check_int("width", entries.pop(-2), lo=1)
                values = [w * 2**i for i in range(n)]
            if -1 in entries:  # tied
                values = [entries.pop(-1)] * n
            for i, v in entries.items():
                if i >= n:
                    raise CandidateError(
                        f"stage.{i}.{STAGE_FIELDS[name]}",
                        f"stage index out of range; the network has {n} stages",
                    )
                values[i] = v
            data[name] = values
        return cls(**data)


def load_candidate(path: str | Path) -> Candidate:
    """Read a candidate (preset) YAML file; errors name the file and the field."""
    p = Path(path)
    try:
        data = read_yaml(p)
    except DocumentError as e:
        if e.message.startswith("YAML syntax error") and e.where.startswith("line"):
            line = e.where.split(",")[0]
            raise CandidateError("<file>", f"{p}: YAML syntax error at {line}") from None
        raise CandidateError("<file>", f"{p}: {e.message}") from None
    if isinstance(data, Mapping) and "candidate" in data and len(data) <= 2:
        data = data["candidate"]  # allow {candidate: {...}, name: ...}
    if data is None:  # an empty, comment-only or `null` file
        fields = [f.name for f in dataclasses.fields(Candidate)]
        raise CandidateError(
            "<file>", f"{p}: empty document: expected a mapping with keys {fields}"
        )
    try:
        return Candidate.from_dict(data)
    except CandidateError as e:
        raise CandidateError(e.field, f"{p}: {str(e).split(': ', 1)[1]}") from None
