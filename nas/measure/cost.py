"""Analytic cost of a Candidate: parameters and fvcore-convention MACs, training and deploy form,
in microseconds and without building anything. This is the fast path that filters a space by cost
before anything trains; ``tests/test_measure.py`` checks it against real models (parameters
exactly) and fvcore (MACs) on sampled candidates.

fvcore's conventions mirrored here (batch 1): conv/linear/matmul = multiply-adds without bias;
scaled-dot-product attention = n_q*n_k*(d + d_v) per head (nas.measure's handle); LayerNorm 5 per
element; BatchNorm (eval) 2 per element; nearest upsampling 1 per output element. Activations,
softmax, GRN, means and elementwise ops are not counted (fvcore skips them).
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.space.candidate import Candidate
from nas.vocab import ATTENTION_MIXERS

__all__ = ["analytic_cost"]


@dataclass
class _Tally:
    params: int = 0
    macs: int = 0
    params_deploy: int = 0
    macs_deploy: int = 0

    def add(
        self, params: int = 0, macs: int = 0, *, train_only: bool = False, deploy_only: bool = False
    ) -> None:
        if not deploy_only:
            self.params += params
            self.macs += macs
        if not train_only:
            self.params_deploy += params
            self.macs_deploy += macs

    def conv(
        self, c_in: int, c_out: int, k: int, hw: int, *, groups: int = 1, bias: bool = True, **kw
    ) -> None:
        self.add(
            c_out * (c_in // groups) * k * k + (c_out if bias else 0),
            hw * c_out * (c_in // groups) * k * k,
            **kw,
        )

    def linear(self, c_in: int, c_out: int, tokens: int) -> None:
        self.add(c_in * c_out + c_out, tokens * c_in * c_out)

    def bn(self, c: int, hw: int, **kw) -> None:
        self.add(2 * c, 2 * c * hw, **kw)

    def ln(self, c: int, hw: int) -> None:
        self.add(2 * c, 5 * c * hw)

    def conv_bn(self, c_in: int, c_out: int, k: int, hw: int, *, groups: int = 1) -> None:
        self.conv(c_in, c_out, k, hw, groups=groups, bias=False)
        self.bn(c_out, hw)

    def rep_dw(self, c: int, k: int, small: int, hw: int, *, bn: bool) -> None:
        """RepDWConv: large branch (+BN) and small branch (+BN) -> one conv with bias."""
        self.conv(c, c, k, hw, groups=c, bias=not bn, train_only=True)
        if bn:
            self.bn(c, hw, train_only=True)
        if small:
            self.conv(c, c, small, hw, groups=c, bias=False, train_only=True)
            self.bn(c, hw, train_only=True)
        self.conv(c, c, k, hw, groups=c, bias=True, deploy_only=True)  # the fused conv

    def mixer(
        self,
        c: int,
        mode: str,
        k: int,
        small: int,
        hw: int,
        *,
        dw_bn: bool,
        v_proj: bool,
        out_proj: bool,
    ) -> None:
        if mode in ATTENTION_MIXERS:
            self.conv(c, (3 if v_proj else 2) * c, 1, hw)  # qkv (or qk)
            self.add(0, 2 * hw * hw * c)  # SDPA: heads * n * n * (d + d_v), heads * d = c
            if mode == "mixed":
                self.rep_dw(c, k, small, hw, bn=dw_bn)
                self.add(1)  # gate
            if mode == "container":  # + beta * A_static V: the N x N matrix, alpha and beta
                self.add(hw * hw + 2, c * hw * hw)
        else:
            if v_proj:
                self.conv(c, c, 1, hw)
            if mode == "static":
                self.rep_dw(c, k, small, hw, bn=dw_bn)
            else:  # static_global: N x N matrix, one matmul per channel
                self.add(hw * hw, c * hw * hw)
        if out_proj:
            self.conv(c, c, 1, hw)


def _blocks(t: _Tally, c: Candidate, i: int, hw: int) -> None:
    dim, k, small, mixer = c.widths[i], c.kernels[i], c.small_kernels[i], c.mixers[i]
    hidden = int(c.mlp_ratios[i] * dim)
    ls = dim if c.layer_scale > 0 else 0
    grn = 2 * hidden if c.grn else 0
    for _ in range(c.depths[i]):
        if c.block == "convnext":
            if mixer == "static":
                t.rep_dw(dim, k, small, hw, bn=False)
            else:
                t.mixer(dim, mixer, k, small, hw, dw_bn=False, v_proj=True, out_proj=True)
            t.ln(dim, hw) if c.norm == "ln" else t.bn(dim, hw)
            t.linear(dim, hidden, hw)
            t.linear(hidden, dim, hw)
            t.add(grn + ls)
        elif c.block == "replk":
            inner = int(dim * c.dw_ratio)
            t.bn(dim, hw)
            t.conv_bn(dim, inner, 1, hw)
            if mixer == "static":
                t.rep_dw(inner, k, small, hw, bn=True)
            else:
                t.mixer(inner, mixer, k, small, hw, dw_bn=True, v_proj=False, out_proj=False)
            t.conv_bn(inner, dim, 1, hw)
            t.bn(dim, hw)  # ConvFFN
            t.conv_bn(dim, hidden, 1, hw)
            t.conv_bn(hidden, dim, 1, hw)
            t.add(grn + 2 * ls)
        else:  # container
            t.conv(dim, dim, 3, hw, groups=dim)  # conditional positional encoding
            t.bn(dim, hw)
            t.mixer(dim, mixer, k, small, hw, dw_bn=False, v_proj=True, out_proj=True)
            t.bn(dim, hw)
            t.conv(dim, hidden, 1, hw)
            t.conv(hidden, dim, 1, hw)
            t.add(grn + 2 * ls)


def _head(t: _Tally, style: str, dim: int, classes: int, hw: int) -> None:
    if style == "convnext":
        t.ln(dim, 1)
    else:
        t.bn(dim, hw)
    t.linear(dim, classes, 1)


def _plain(t: _Tally, c: Candidate) -> None:
    s, w = c.image_size, c.widths
    if c.stem == "replk":
        r1 = (s + 1) // 2
        t.conv_bn(c.in_chans, w[0], 3, r1 * r1)
        t.conv_bn(w[0], w[0], 3, r1 * r1, groups=w[0])
        t.conv_bn(w[0], w[0], 1, r1 * r1)
        r = (r1 + 1) // 2
        t.conv_bn(w[0], w[0], 3, r * r, groups=w[0])
    else:
        r = s // 4
        t.conv(c.in_chans, w[0], 4, r * r)
        t.ln(w[0], r * r)
    for i in range(c.num_stages):
        if i > 0:
            if c.downsample == "convnext":
                t.ln(w[i - 1], r * r)
                r //= 2
                t.conv(w[i - 1], w[i], 2, r * r)
            elif c.downsample == "replk":
                t.conv_bn(w[i - 1], w[i], 1, r * r)
                r = (r + 1) // 2
                t.conv_bn(w[i], w[i], 3, r * r, groups=w[i])
            else:
                r //= 2
                t.conv(w[i - 1], w[i], 2, r * r)
                t.ln(w[i], r * r)
        _blocks(t, c, i, r * r)
    _head(t, c.head, w[-1], c.num_classes, r * r)


def _revcol(t: _Tally, c: Candidate) -> None:
    from nas.models.revcol import aux_columns

    w, n = c.widths, c.num_stages
    res = [c.image_size // 4]
    for _ in range(1, n):
        res.append(res[-1] // 2)
    t.conv(c.in_chans, w[0], 4, res[0] ** 2)
    t.ln(w[0], res[0] ** 2)
    for col in range(c.columns):
        for lv in range(n):
            hw = res[lv] ** 2
            if lv > 0:
                t.conv(w[lv - 1], w[lv], 2, hw)
                t.ln(w[lv], hw)
            if col > 0 and lv < n - 1:
                up_hw = res[lv + 1] ** 2
                t.linear(w[lv + 1], w[lv], up_hw)
                t.ln(w[lv], up_hw)
                t.add(0, w[lv] * hw)  # nearest upsampling
            _blocks(t, c, lv, hw)
            t.add(w[lv])  # alpha
    _head(t, "convnext", w[-1], c.num_classes, 1)
    if c.inter_supervision:  # auxiliary heads and decoders: training-form parameters only
        extra = len(aux_columns(c.columns)) - 1
        head = 2 * w[-1] + w[-1] * c.num_classes + c.num_classes
        dec = 0
        for a, b in zip(w[::-1][:-1], w[::-1][1:]):
            dec += a * b + b + 2 * b  # 1x1 conv + LN
            dec += 9 * b + b + 2 * b + (b * b + b) * 2 + b  # ConvNeXt block k=3, expansion 1, LS
        dec += w[0] * c.in_chans * 16 + c.in_chans * 16
        t.add(extra * (head + dec), train_only=True)


def analytic_cost(candidate: Candidate, *, image_size: int | None = None) -> dict[str, int]:
    """``params``, ``params_deploy``, ``macs``, ``macs_deploy`` (batch 1) of a Candidate."""
    c = candidate
    if image_size is not None and image_size != c.image_size:
        c = Candidate.from_params({"image_size": image_size}, base=c)
    t = _Tally()
    (_revcol if c.macro == "revcol" else _plain)(t, c)
    return {
        "params": t.params,
        "params_deploy": t.params_deploy,
        "macs": t.macs,
        "macs_deploy": t.macs_deploy,
    }


FAST_COLUMNS = {
    "params_m": "params",
    "params_m_deploy": "params_deploy",
    "macs_m": "macs",
    "macs_m_deploy": "macs_deploy",
}


def fast_values(candidate: Candidate, columns) -> dict[str, float]:
    """The fast (analytic) cost columns of a candidate, in the units of their names."""
    cost = analytic_cost(candidate)
    return {col: cost[FAST_COLUMNS[col]] / 1e6 for col in columns if col in FAST_COLUMNS}


def fast_constraint_check(constraints: dict, *, source: str = "constraints"):
    """A predicate Candidate -> bool for the params/MACs windows of ``constraints``, computed by
    ``analytic_cost``; columns that need a measurement (latency, memory) are refused."""
    from nas.errors import UserError

    slow = sorted(set(constraints) - set(FAST_COLUMNS))
    if slow:
        raise UserError(
            f"{source}: {slow[0]} needs a measurement; the fast cost path filters only {sorted(FAST_COLUMNS)}"
        )

    def accept(candidate: Candidate) -> bool:
        values = fast_values(candidate, constraints)
        for col, (lo, hi) in constraints.items():
            value = values[col]
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                return False
        return True

    return accept


def frequency_shift(
    seen: list[dict], accepted: list[dict], *, min_delta: float = 0.0
) -> list[tuple[str, object, float, float]]:
    """(dimension, value, share among all valid candidates, share among accepted ones) for every
    value of every dimension, largest shift first."""
    import json

    rows = []
    keys = sorted({k for p in seen for k in p})
    for key in keys:
        values = {json.dumps(p[key]) for p in seen if key in p}
        n_all = sum(key in p for p in seen)
        n_acc = sum(key in p for p in accepted)
        for v in sorted(values):
            p_all = sum(json.dumps(p.get(key)) == v for p in seen if key in p) / max(n_all, 1)
            p_acc = sum(json.dumps(p.get(key)) == v for p in accepted if key in p) / max(n_acc, 1)
            if abs(p_acc - p_all) >= min_delta:
                rows.append((key, json.loads(v), p_all, p_acc))
    rows.sort(key=lambda r: -abs(r[3] - r[2]))
    return rows
