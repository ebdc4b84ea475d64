"""The parts of a candidate's deploy model, enumerated from the Candidate alone (no module built).

This is the one definition of what the latency predictor (``nas.measure.latency_model``) keys on:
the stem layers, the transitions (with the Identity before the first stage), every block with its
style, mixer, kernel, widths and input shape, the head, and RevCol's fusion units (each level's
down path and ``UpSample``), in the order the deploy model calls them, each with its input shapes
and its features (``FEATURES``: Conv2d/Linear multiply-adds, input and output elements, the dense
token-mixing term). ``nas.measure.latency_fit`` times the parts this enumeration names (it finds
their modules in a built model and checks, part by part, that the model agrees:
``model_parts`` walks a model with hooks); predicting needs nothing but this walk, a few tens of
microseconds a candidate.

A part's *signature* is readable text: its class, its deploy configuration (what changes its
time; not drop-path rates nor re-param branches, merged in the deploy form) and its input; its
*group* the class with only the categorical settings (mixer, norm, GRN, LayerScale, depthwise or
dense), the unit of the per-group regression.
"""

from __future__ import annotations

import functools

from nas.measure.latency_model import Part
from nas.space.candidate import Candidate
from nas.vocab import ATTENTION_MIXERS, DW_MIXERS

__all__ = ["candidate_parts"]

_DEFAULT_KERNEL = {"convnext": 7, "replk": 3, "container": 5}


class _Walk:
    """Collects parts in call order; ``cl`` tracks whether activations are channels-last."""

    def __init__(self, batch: int, channels_last: bool):
        self.b, self.cl, self.parts = batch, channels_last, []

    def _spec(self, c: int, h: int) -> tuple:
        return ("t", (self.b, c, h, h), self.cl and c > 1 and h * h > 1)

    def add(self, name: str, cfg: dict, cat: dict, x: tuple[int, int], out: tuple[int, int],
            macs: int, *, size: int | None = None, out_elems: int | None = None) -> None:  # fmt: skip
        (c, h), (c_out, h_out) = x, out
        out_elems = self.b * c_out * h_out * h_out if out_elems is None else out_elems
        args = (self._spec(c, h),) + ((("v", (size, size)),) if size is not None else ())
        feats = (float(macs), float(self.b * c * h * h), float(out_elems),
                 float(self.b * c * (h * h) ** 2))  # fmt: skip
        self.parts.append(_part(name, tuple(cfg.items()), tuple(cat.items()), args, feats))

    def same(self, name: str, c: int, h: int) -> None:
        """A shape-keeping layer without multiply-adds (LayerNorm2d, BatchNorm2d, ReLU, Identity)."""
        self.add(name, {"c": c}, {}, (c, h), (c, h), 0)
        if name == "LayerNorm2d":  # permute, normalise, permute back: NHWC memory, NCHW view
            self.cl = True

    def conv(self, c_in: int, c_out: int, k: int, h: int, *, stride: int = 1, pad: int = 0,
             groups: int = 1, bias: bool = True) -> int:  # fmt: skip
        h_out = (h + 2 * pad - k) // stride + 1
        macs = c_out * (c_in // groups) * k * k * self.b * h_out * h_out
        cfg = {
            "c_in": c_in,
            "c_out": c_out,
            "k": k,
            "s": stride,
            "p": pad,
            "g": groups,
            "bias": bias,
        }
        self.add("Conv2d", cfg, {"dw": groups > 1}, (c_in, h), (c_out, h_out), macs)
        return h_out

    def conv_bn(self, c_in: int, c_out: int, k: int, h: int, *, stride: int = 1, groups: int = 1,
                relu: bool = True) -> int:  # fmt: skip
        h = self.conv(c_in, c_out, k, h, stride=stride, pad=k // 2, groups=groups, bias=False)
        self.same("BatchNorm2d", c_out, h)
        if relu:
            self.same("ReLU", c_out, h)
        return h


@functools.lru_cache(maxsize=1 << 16)
def _part(name: str, cfg: tuple, cat: tuple, args: tuple, feats: tuple) -> Part:
    """One Part, its signature and group as text (cached: a search meets the same blocks again
    and again, and formatting the text is most of the walk's cost)."""
    shape = "x".join(map(str, args[0][1])) + ("cl" if args[0][2] else "")
    size = f">{args[1][1][0]}" if len(args) > 1 else ""
    text = ",".join(f"{k}={v}" for k, v in cfg)
    group = f"{name}(" + ",".join(f"{k}={v}" for k, v in cat) + ")"
    return Part(f"{name}({text})@{shape}{size}", group, name, feats, args)


def _mixer_macs(dim: int, mode: str, k: int, *, v_proj: bool, out_proj: bool) -> int:
    """Conv multiply-adds per position of an ``AffinityMixer`` (attention and N x N matrix
    products are not Conv2d/Linear: the ``attn`` feature stands for them)."""
    macs = 0
    if mode in ATTENTION_MIXERS:
        macs += (3 if v_proj else 2) * dim * dim
    elif v_proj:
        macs += dim * dim
    if mode in DW_MIXERS:
        macs += dim * k * k
    return macs + (dim * dim if out_proj else 0)


def _mixer_cfg(mode: str, k: int, head_dim: int) -> dict:
    cfg: dict = {"mixer": mode}
    if mode in DW_MIXERS:
        cfg["k"] = k
    if mode in ATTENTION_MIXERS:
        cfg["head_dim"] = head_dim
    return cfg


def _blocks(w: _Walk, c: Candidate, i: int, h: int) -> None:
    """The blocks of stage (or RevCol level) ``i`` at resolution ``h``, as ``stage_blocks``."""
    dim, mode = c.widths[i], c.mixers[i]
    k = c.kernels[i] or _DEFAULT_KERNEL[c.block]
    hidden, ls, pos = int(c.mlp_ratios[i] * dim), c.layer_scale > 0, w.b * h * h
    mix = _mixer_cfg(mode, k, c.head_dim or 32)
    x = (dim, h)
    for _ in range(c.depths[i]):
        if c.block == "convnext":
            m = (
                dim * k * k
                if mode == "static"
                else _mixer_macs(dim, mode, k, v_proj=True, out_proj=True)
            )
            cat = {"mixer": mode, "norm": c.norm, "grn": c.grn, "ls": ls}
            cfg = {"dim": dim, "hidden": hidden, **mix, **cat}
            w.add("ConvNeXtBlock", cfg, cat, x, x, (m + 2 * dim * hidden) * pos)
        elif c.block == "replk":
            inner = int(c.dw_ratio * dim)
            m = (
                inner * k * k
                if mode == "static"
                else _mixer_macs(inner, mode, k, v_proj=False, out_proj=False)
            )
            cat = {"mixer": mode, "ls": ls}
            cfg = {"dim": dim, "inner": inner, **mix, **cat}
            w.add("RepLKBlock", cfg, cat, x, x, (2 * dim * inner + m) * pos)
            cat = {"grn": c.grn, "ls": ls}
            w.add(
                "ConvFFN", {"dim": dim, "hidden": hidden, **cat}, cat, x, x, 2 * dim * hidden * pos
            )
        else:
            m = 9 * dim + _mixer_macs(dim, mode, k, v_proj=True, out_proj=True)
            cat = {"mixer": mode, "grn": c.grn, "ls": ls}
            cfg = {"dim": dim, "hidden": hidden, **mix, **cat}
            w.add("ContainerBlock", cfg, cat, x, x, (m + 2 * dim * hidden) * pos)


def _stem(w: _Walk, style: str, c_in: int, dim: int, h: int) -> int:
    if style == "replk":
        h = w.conv_bn(c_in, dim, 3, h, stride=2)
        h = w.conv_bn(dim, dim, 3, h, groups=dim)
        h = w.conv_bn(dim, dim, 1, h)
        return w.conv_bn(dim, dim, 3, h, stride=2, groups=dim)
    h = w.conv(c_in, dim, 4, h, stride=4)
    w.same("LayerNorm2d", dim, h)
    return h


def _transition(w: _Walk, style: str, c_in: int, c_out: int, h: int) -> int:
    if style == "convnext":
        w.same("LayerNorm2d", c_in, h)
        return w.conv(c_in, c_out, 2, h, stride=2)
    if style == "replk":
        h = w.conv_bn(c_in, c_out, 1, h)
        return w.conv_bn(c_out, c_out, 3, h, stride=2, groups=c_out)
    h = w.conv(c_in, c_out, 2, h, stride=2)
    w.same("LayerNorm2d", c_out, h)
    return h


def _head(w: _Walk, style: str, dim: int, classes: int, h: int) -> None:
    cfg = {"style": style, "dim": dim, "classes": classes}
    # the output is (B, classes), not an image
    w.add("Head", cfg, {"style": style}, (dim, h), (classes, 1), dim * classes * w.b,
          out_elems=w.b * classes)  # fmt: skip


def _plain(w: _Walk, c: Candidate, h: int) -> None:
    h = _stem(w, c.stem, c.in_chans, c.widths[0], h)
    w.same("Identity", c.widths[0], h)  # transitions[0]
    for i in range(c.num_stages):
        if i > 0:
            h = _transition(w, c.downsample, c.widths[i - 1], c.widths[i], h)
        _blocks(w, c, i, h)
    _head(w, c.head, c.widths[-1], c.num_classes, h)


def _revcol(w: _Walk, c: Candidate, h: int) -> None:
    widths, n = c.widths, c.num_stages
    res = [_stem(w, "convnext", c.in_chans, widths[0], h)]
    for _ in range(1, n):
        res.append((res[-1] - 2) // 2 + 1)
    for col in range(c.columns):
        for lv in range(n):
            if lv == 0:
                w.same("Identity", widths[0], res[0])
            else:  # the fusion unit's down path: conv then LN
                w.conv(widths[lv - 1], widths[lv], 2, res[lv - 1], stride=2)
                w.same("LayerNorm2d", widths[lv], res[lv])
            if col > 0 and lv < n - 1:  # the up path: Linear, LN, nearest x2
                c_up, h_up = widths[lv + 1], res[lv + 1]
                cfg = {"c_in": c_up, "c_out": widths[lv]}
                macs = c_up * widths[lv] * w.b * h_up * h_up
                w.add("UpSample", cfg, {}, (c_up, h_up), (widths[lv], res[lv]), macs, size=res[lv])
            _blocks(w, c, lv, res[lv])
    _head(w, "convnext", widths[-1], c.num_classes, res[-1])


def candidate_parts(candidate: Candidate, proto) -> list[Part]:
    """The parts of ``candidate``'s deploy form at ``proto``'s batch, input size and memory
    format (a ``LatencyProtocol``), in call order, without building it."""
    w = _Walk(proto.batch, proto.channels_last)
    (_revcol if candidate.macro == "revcol" else _plain)(w, candidate, proto.image_size)
    return w.parts
