"""RevCol: reversible multi-column networks (Cai et al., ICLR 2023, arXiv 2212.11696).

Level l of column i (seeds.md §1.2):

    c_l^(i) = alpha_l^(i) * c_l^(i-1) + Blocks_l( Down_l(c_{l-1}^(i)) + Up_l(c_{l+1}^(i-1)) )

with the stem output as c_{-1}, no Up term in the first column and none at the top level.
Inverse (backward): c_l^(i-1) = (c_l^(i) - F_l) / alpha_l, evaluated from level 3 down to 0.

Departures from the official code, each deliberate:

* alpha = ALPHA_MIN + softplus(theta) (initialised to 0.5), instead of an in-place clamp to
  |alpha| >= 1e-3. The reconstruction error grows by about 1/alpha per column; a floor of 0.25 keeps
  the worst case at 4x per column, where a 1e-3 floor allows 1000x (garbage gradients).
* Memory is independent of the column count: no column keeps its outputs; only the last column's
  features are held (in a chain object shared by the columns of one forward), and every earlier
  column's features are reconstructed, one column at a time, during backward.
* Any block style of the vocabulary can fill the levels (``nas.models.parts.stage_blocks``).
* Intermediate supervision works for any column count (``aux_columns``).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.models.blocks import DropPath, LayerNorm2d
from nas.models.parts import drop_path_rates, make_head, stage_blocks
from nas.models.revcol_aux import Decoder, aux_columns, aux_loss_weights, revcol_loss
from nas.space.candidate import Candidate

__all__ = ["ALPHA_MIN", "RevColNet", "aux_columns", "aux_loss_weights", "revcol_loss"]

ALPHA_MIN = 0.25
_OFFICIAL_ALPHA_MIN = 1e-3
_ALPHA_INIT = 0.5
STATE_DTYPE = torch.float64  # column states of the reversible path (see _ReversibleColumn)


class UpSample(nn.Module):
    """Fusion 'up' path: per-pixel Linear C_{l+1} -> C_l, channels-last LayerNorm, nearest x2."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = nn.Linear(c_in, c_out)
        self.norm = nn.LayerNorm(c_out, eps=1e-6)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.norm(self.proj(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return F.interpolate(x, size=size, mode="nearest")


class Level(nn.Module):
    """F_l(down_input, up_input) = Blocks_l(Down_l(down_input) + Up_l(up_input))."""

    def __init__(
        self, level: int, widths: tuple[int, ...], blocks: nn.Module, *, first_column: bool
    ):
        super().__init__()
        top = level == len(widths) - 1
        if level == 0:
            self.down = nn.Identity()
        else:  # NOTE: conv then LN (the reverse of ConvNeXt's downsample), as the paper's fusion unit
            self.down = nn.Sequential(
                nn.Conv2d(widths[level - 1], widths[level], 2, stride=2),
                LayerNorm2d(widths[level], eps=1e-6),
            )
        self.up = None if first_column or top else UpSample(widths[level + 1], widths[level])
        self.blocks = blocks
        self._found: tuple[list[nn.Module], list[DropPath]] | None = None

    def _modules_of_note(self) -> tuple[list[nn.Module], list[DropPath]]:
        """(modules owning buffers, DropPath modules), found once: the reversible backward asks
        per level and step, and walking the module tree each time cost a few percent of it."""
        if self._found is None:
            found = list(self.modules())
            self._found = (
                [m for m in found if m._buffers],
                [m for m in found if isinstance(m, DropPath)],
            )
        return self._found

    def reparameterize(self) -> None:
        """Deploy form (``reparameterize_modules`` calls this before the blocks' own): the blocks
        drop branches and BNs, so the modules found before are looked up again on next use."""
        self._found = None

    def buffers_now(self) -> list[torch.Tensor]:
        """The level's buffers (read from their modules: ``.to()`` replaces the tensors)."""
        return [b for m in self._modules_of_note()[0] for b in m._buffers.values() if b is not None]

    def stochastic(self) -> bool:
        """Whether a forward draws random numbers (an active DropPath)."""
        return self.training and any(d.p > 0 for d in self._modules_of_note()[1])

    def forward(self, down: torch.Tensor, up: torch.Tensor | None) -> torch.Tensor:
        x = self.down(down)
        if self.up is not None:
            x = x + self.up(up, x.shape[-2:])
        return self.blocks(x)


class Column(nn.Module):
    """One column: a Level per stage and a learnable per-channel alpha per level.

    ``alpha_mode="bounded"``: alpha = ALPHA_MIN + softplus(alpha_theta) (see the module notes).
    ``alpha_mode="official"``: the official parameterisation: a raw parameter ``alphas[l]``
    (init 0.5) whose magnitude is clamped in place to >= 1e-3 before each use, its sign kept
    (``RevCol/models/revcol.py`` ``_clamp_abs``; an exact 0 stays 0, as there), and which the
    optimizer decays (``decayed_parameters``, read by ``nas.train.param_groups``).
    """

    def __init__(self, levels: list[Level], widths: tuple[int, ...], alpha_mode: str = "bounded"):
        super().__init__()
        self.levels = nn.ModuleList(levels)
        self.alpha_mode = alpha_mode
        if alpha_mode == "official":
            self.alphas = nn.ParameterList(
                [nn.Parameter(torch.full((1, w, 1, 1), _ALPHA_INIT)) for w in widths]
            )
        else:
            theta = math.log(math.expm1(_ALPHA_INIT - ALPHA_MIN))  # softplus^-1
            self.alpha_theta = nn.ParameterList(
                [nn.Parameter(torch.full((1, w, 1, 1), theta)) for w in widths]
            )

    def decayed_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer decays whatever their shape: the official alphas."""
        return list(self.alphas) if self.alpha_mode == "official" else []

    def alpha(self, level: int) -> torch.Tensor:
        if self.alpha_mode == "official":
            p = self.alphas[level]
            with torch.no_grad():
                sign = p.data.sign()
                p.data.abs_().clamp_(min=_OFFICIAL_ALPHA_MIN).mul_(sign)
            return p
        return ALPHA_MIN + F.softplus(self.alpha_theta[level])

    def level_out(self, level: int, x_down: torch.Tensor, prev: list | None) -> torch.Tensor:
        """F_l for this column (no alpha term)."""
        up = None if prev is None or level + 1 >= len(prev) else prev[level + 1]
        return self.levels[level](x_down, up)

    def forward(self, x: torch.Tensor, prev: list[torch.Tensor] | None) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        for level in range(len(self.levels)):
            f = self.level_out(level, x if level == 0 else out[-1], prev)
            out.append(f if prev is None else self.alpha(level) * prev[level] + f)
        return out


class _Chain:
    """Shared by the columns of one forward: holds the features of the column whose backward runs
    next (at first the last column's outputs), replaced by each reconstruction."""

    __slots__ = ("features", "index")

    def __init__(self):
        self.features: list[torch.Tensor] | None = None  # reconstructed states of column `index`
        self.index = -1  # the column whose backward runs next


def _rng_state(device: torch.device):
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


class _ReversibleColumn(torch.autograd.Function):
    """Runs one column without saving activations; backward recomputes each level and
    reconstructs the previous column's features c^(i-1) from this column's c^(i).

    Exact inversion: the column states travel in float64 (``STATE_DTYPE``) while every block
    computes in the model's dtype on the float32 casts of those states. The recomputed F is then
    bit-identical to the forward's (same inputs, same kernels), and the reconstruction
    (c^(i) - F) / alpha carries only float64 rounding, so the error does not compound across
    columns (in float32 it grows by about (1 + |dF|) / alpha per column: ~1e-3 at 8 columns).

    Parameter gradients are accumulated into ``.grad`` by an inner ``torch.autograd.backward``
    (as the official code); the Function returns gradients for ``x`` and ``c^(i-1)`` only.
    """

    @staticmethod
    def forward(
        ctx,
        column: Column,
        chain: _Chain,
        index: int,
        is_last: bool,
        x: torch.Tensor,
        *prev: torch.Tensor,
    ):
        device = x.device
        ctx.column, ctx.chain, ctx.index, ctx.first = column, chain, index, len(prev) == 0
        ctx.autocast = (
            torch.is_autocast_enabled(device.type),
            torch.get_autocast_dtype(device.type),
        )
        ctx.rng = []
        prev_c = [p.to(x.dtype) for p in prev]  # what the blocks see
        states: list[torch.Tensor] = []
        with torch.no_grad():
            for level in range(len(column.levels)):
                stochastic = column.levels[level].stochastic()
                ctx.rng.append(_rng_state(device) if stochastic else None)
                down = x if level == 0 else states[-1].to(x.dtype)
                f = column.level_out(level, down, prev_c or None)
                # alpha * c^(i-1) + F, in STATE_DTYPE (the other operands are promoted exactly)
                states.append(
                    f.to(STATE_DTYPE)
                    if ctx.first
                    else torch.addcmul(f, column.alpha(level), prev[level])
                )
        # Saved (visible to saved-tensor hooks): the stem output, shared by every column, and the
        # last column's states. Nothing else is kept: earlier columns are reconstructed.
        ctx.save_for_backward(x, *(states if is_last else ()))
        if is_last:
            chain.index = index
        return tuple(states)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        column, chain = ctx.column, ctx.chain
        x, *saved = ctx.saved_tensors
        cur = saved if saved else chain.features
        if chain.index != ctx.index or cur is None:
            raise RuntimeError(
                "reversible RevCol backward must start from the last column's output and run once per forward "
                "(a loss on intermediate columns only, or retain_graph=True, cannot be reversed)"
            )
        n = len(column.levels)
        g = [torch.zeros_like(c) if gr is None else gr for c, gr in zip(cur, grads)]
        prev: list[torch.Tensor | None] = [None] * n
        g_prev: list[torch.Tensor | None] = [None] * n
        g_x = None
        for level in reversed(range(n)):
            f, down, up, buffers = _recompute(ctx, column.levels[level], level, x, cur, prev)
            outputs, out_grads = [f], [g[level].to(f.dtype)]
            if not ctx.first:
                with torch.enable_grad():
                    alpha = column.alpha(level)
                alpha_state = alpha.detach().to(STATE_DTYPE)
                with torch.no_grad():  # c^(i-1) = (c^(i) - F) / alpha, and dL/dalpha by hand
                    prev[level] = torch.sub(cur[level], f.detach()).div_(alpha_state)
                    g_alpha = (g[level] * prev[level]).sum(dim=(0, 2, 3), keepdim=True)
                outputs.append(alpha)
                out_grads.append(g_alpha.to(alpha.dtype))
            torch.autograd.backward(outputs, out_grads)  # parameter .grad, and down/up .grad
            with torch.no_grad():
                for b, snapshot in buffers:
                    b.copy_(snapshot)
                if level == 0:
                    g_x = down.grad
                else:  # promoted to STATE_DTYPE exactly
                    g[level - 1] = g[level - 1] + down.grad
                if not ctx.first:
                    g_prev[level] = alpha_state * g[level]
                    if up is not None:
                        g_prev[level + 1] = g_prev[level + 1] + up.grad
        chain.features, chain.index = (None, -1) if ctx.first else (prev, ctx.index - 1)
        ctx.column = ctx.chain = None
        return (None, None, None, None, g_x, *([] if ctx.first else g_prev))


def _recompute(ctx, level_module: Level, level: int, x: torch.Tensor, cur: list, prev: list):
    """F_l with grad, under the forward's RNG (for a level that draws random numbers) and autocast
    state. Also returns a snapshot of the level's buffers, restored after its backward so BN
    statistics are not updated twice."""
    device = x.device
    buffers = [(b, b.clone()) for b in level_module.buffers_now()]
    rng = ctx.rng[level]
    enabled, dtype = ctx.autocast
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.enable_grad())
        if rng is not None:
            stack.enter_context(
                torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
            )
            _set_rng_state(rng, device)
        if enabled or torch.is_autocast_enabled(device.type):
            stack.enter_context(torch.autocast(device.type, dtype=dtype, enabled=enabled))
        down = (x if level == 0 else cur[level - 1].to(x.dtype)).detach().requires_grad_(True)
        up = None
        if not ctx.first and level + 1 < len(cur):
            up = prev[level + 1].to(x.dtype).detach().requires_grad_(True)
        f = level_module(down, up)
    return f, down, up, buffers


class RevColNet(nn.Module):
    """RevCol: stem computed once, N columns of len(depths) levels, head on the last top level."""

    def __init__(self, c: Candidate):
        super().__init__()
        self.reversible = c.reversible
        self.stem = nn.Sequential(
            nn.Conv2d(c.in_chans, c.widths[0], 4, stride=4), LayerNorm2d(c.widths[0], eps=1e-6)
        )
        rates = drop_path_rates(c)  # the same schedule in every column, as the official code
        self.columns = nn.ModuleList(
            Column(
                [
                    Level(lv, c.widths, stage_blocks(c, lv, rates[lv]), first_column=i == 0)
                    for lv in range(c.num_stages)
                ],
                c.widths,
                c.revcol_alpha,
            )
            for i in range(c.columns)
        )
        self.head = make_head("convnext", c.widths[-1], c.num_classes)
        self.aux_at = aux_columns(c.columns) if c.inter_supervision else []
        self.aux_heads = (
            nn.ModuleList(
                make_head("convnext", c.widths[-1], c.num_classes) for _ in self.aux_at[:-1]
            )
            if self.aux_at
            else None
        )
        self.decoders = (
            nn.ModuleList(Decoder(c.widths, c.in_chans) for _ in self.aux_at[:-1])
            if self.aux_at
            else None
        )

    def _columns(
        self, x: torch.Tensor, keep: list[int] = ()
    ) -> tuple[list[torch.Tensor], dict[int, list[torch.Tensor]]]:
        prev: list[torch.Tensor] | None = None
        kept: dict[int, list[torch.Tensor]] = {}
        use_rev = self.reversible and torch.is_grad_enabled() and self.training
        chain = _Chain() if use_rev else None
        for i, column in enumerate(self.columns):
            if use_rev:
                prev = list(
                    _ReversibleColumn.apply(
                        column, chain, i, i == len(self.columns) - 1, x, *(prev or [])
                    )
                )
            else:
                prev = column(x, prev)
            if i in keep:
                kept[i] = [p.to(x.dtype) for p in prev]
        return [p.to(x.dtype) for p in prev], kept

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._columns(self.stem(x))[0][-1]

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_aux(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(logits of every supervised column, the last being the model's output; reconstructions)."""
        if not self.aux_at:
            return [self.forward(x)], []
        last, kept = self._columns(self.stem(x), keep=self.aux_at[:-1])
        logits = [h(kept[i][-1]) for h, i in zip(self.aux_heads, self.aux_at[:-1])] + [
            self.head(last[-1])
        ]
        recons = [d(kept[i][-1]) for d, i in zip(self.decoders, self.aux_at[:-1])]
        return logits, recons

    def reparameterize(self) -> None:
        """Deploy form drops the intermediate-supervision heads and decoders."""
        self.aux_at, self.aux_heads, self.decoders = [], None, None
