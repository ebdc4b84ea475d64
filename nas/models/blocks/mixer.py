"""Token mixing as an affinity matrix applied to values, Y = A V.

Gao et al., "Container: Context Aggregation Network", NeurIPS 2021 (arXiv 2106.01401), sec. 3:
a depthwise conv is a static, local affinity (one head per channel), self-attention a dynamic,
dense one (softmax(Q K^T / sqrt(d)) per head), and the MLP-Mixer token-mixing matrix a static,
dense one shared across channels. The mixed form follows Container-Light's ``MixBlock``
(allenai/container ``models.py``): a sigmoid-gated convex blend of attention and a depthwise conv
on the same V. ``container`` is the paper's own block (sec. 3.3): ``(alpha * A_dynamic + beta *
A_static) V`` with two learnable scalars and the N x N matrix of ``static_global``; the official
repository has no code for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.models.blocks.reparam import RepDWConv
from nas.vocab import ATTENTION_MIXERS, DW_MIXERS, GLOBAL_MIXERS, MIXERS

__all__ = ["ATTENTION_MIXERS", "DW_MIXERS", "MIXERS", "AffinityMixer", "check_mixer"]


def check_mixer(name: str) -> str:
    """Return ``name`` if it is a known mixer, else raise ValueError listing the valid ones."""
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; expected one of {sorted(MIXERS)}")
    return name


def _conv1x1(c_in: int, c_out: int, *, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, bias=bias)


class AffinityMixer(nn.Module):
    """Container's unified token mixer on NCHW tensors: ``proj(A V)`` with ``V = v(x)``.

    Args:
        dim: channels C (input and output).
        mode: one of ``MIXERS``.
        kernel_size, small_kernel, dw_bn: the depthwise conv (``RepDWConv``) of static/mixed; its
            optional small branch always has BN so it can be merged exactly.
        head_dim: channels per attention head (dynamic/mixed); heads = dim // head_dim.
        tokens: N = H * W, required by ``static_global`` (the matrix fixes the resolution).
        v_proj: compute V (and Q, K) with 1x1 convs; if False, V is the input itself and
            attention modes use one 1x1 conv ``qk`` for Q and K only.
        out_proj: a 1x1 conv ``proj`` after mixing (W1 in the paper); identity if False.
        proj_bias: bias of the 1x1 convs.

    Submodules: ``v`` (static/static_global V), ``qkv`` or ``qk`` (attention), ``dw``
    (static/mixed), ``gate`` (mixed, scalar parameter), ``affinity`` (static_global/container,
    N x N parameter), ``alpha`` and ``beta`` (container, scalar parameters), ``proj``.
    """

    def __init__(
        self,
        dim: int,
        *,
        mode: str,
        kernel_size: int = 5,
        small_kernel: int = 0,
        dw_bn: bool = False,
        head_dim: int = 32,
        tokens: int | None = None,
        v_proj: bool = True,
        out_proj: bool = True,
        proj_bias: bool = True,
    ) -> None:
        super().__init__()
        self.mode = check_mixer(mode)
        if dim < 1:
            raise ValueError(f"dim: expected a positive integer, got {dim}")
        self.dim = dim
        self.v = self.qkv = self.qk = self.dw = self.gate = self.affinity = None
        self.alpha = self.beta = None
        if mode in ATTENTION_MIXERS:
            if head_dim < 1 or dim % head_dim:
                raise ValueError(
                    f"head_dim: mixer {mode!r} needs dim divisible by head_dim, got dim={dim}, "
                    f"head_dim={head_dim}"
                )
            self.head_dim, self.heads = head_dim, dim // head_dim
            if v_proj:
                self.qkv = _conv1x1(dim, 3 * dim, bias=proj_bias)
            else:
                self.qk = _conv1x1(dim, 2 * dim, bias=proj_bias)
        elif v_proj:
            self.v = _conv1x1(dim, dim, bias=proj_bias)
        if mode in DW_MIXERS:
            self.dw = RepDWConv(
                dim, kernel_size, small_kernel=small_kernel, bn=dw_bn, small_bn=True
            )
        if mode == "mixed":
            # Container MixBlock: one scalar w per block, s = sigmoid(w) starts at 0.5/0.5
            self.gate = nn.Parameter(torch.zeros(1))
        if mode in GLOBAL_MIXERS:
            self._global_params(tokens)
        self.tokens = tokens
        self.proj = _conv1x1(dim, dim, bias=proj_bias) if out_proj else nn.Identity()
        # Set by nas.pretrain.FCMAE: an object whose keep(h, w, dtype) is the (B, 1, h, w) mask
        # of visible positions; attention then ignores masked keys, the static affinity masked
        # columns. None: no mask.
        self.mask_source = None

    def _visible(self, v: torch.Tensor) -> torch.Tensor | None:
        if self.mask_source is None:
            return None
        return self.mask_source.keep(v.shape[-2], v.shape[-1], v.dtype)

    def _global_params(self, tokens: int | None) -> None:
        """The N x N matrix of static_global/container, and container's alpha and beta."""
        if self.mode == "container":
            # NOTE: init choice (the paper says only "learnable"): alpha = beta = 0.5, so the block
            # starts as the even blend Container-Light's MixBlock starts from (sigmoid(0) = 0.5),
            # with the identity-like static matrix in place of its depthwise conv.
            self.alpha = nn.Parameter(torch.full((1,), 0.5))
            self.beta = nn.Parameter(torch.full((1,), 0.5))
        if tokens is None or tokens < 1:
            raise ValueError(f"tokens: mixer {self.mode!r} needs tokens = H * W >= 1, got {tokens}")
        # NOTE: init choice (the paper gives none): identity plus trunc_normal(std 0.02), so
        # the mixer starts by passing V through (like a DW conv near a delta kernel) rather
        # than averaging every token into noise; the small noise breaks the symmetry.
        affinity = torch.eye(tokens) + nn.init.trunc_normal_(torch.empty(tokens, tokens), std=0.02)
        self.affinity = nn.Parameter(affinity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "static":
            out = self.dw(x if self.v is None else self.v(x))
        elif self.mode == "static_global":
            out = self._global(x if self.v is None else self.v(x))
        else:
            if self.qkv is not None:
                q, k, v = self.qkv(x).chunk(3, dim=1)
            else:
                (q, k), v = self.qk(x).chunk(2, dim=1), x
            out = self._attention(q, k, v)
            if self.mode == "mixed":
                s = torch.sigmoid(self.gate)
                out = s * out + (1.0 - s) * self.dw(v)
            elif self.mode == "container":  # (alpha A_dyn + beta A_static) V, on the same V
                out = self.alpha * out + self.beta * self._global(v)
        return self.proj(out)

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Multi-head softmax attention over the H*W tokens; heads are contiguous channel groups."""
        b, c, h, w = v.shape

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, heads, N, head_dim)
            return t.reshape(b, self.heads, self.head_dim, h * w).transpose(-1, -2)

        keep = self._visible(v)
        attn_mask = None if keep is None else keep.flatten(2).unsqueeze(1) > 0  # (B, 1, 1, N)
        out = F.scaled_dot_product_attention(
            heads(q), heads(k), heads(v), attn_mask=attn_mask, scale=self.head_dim**-0.5
        )
        return out.transpose(-1, -2).reshape(b, c, h, w)

    def _global(self, v: torch.Tensor) -> torch.Tensor:
        """Y[:, :, i] = sum_j A[i, j] V[:, :, j]: one N x N matrix shared by all channels."""
        b, c, h, w = v.shape
        if h * w != self.tokens:
            raise ValueError(
                f"mixer {self.mode!r} was built for tokens={self.tokens} but got an input of "
                f"{h}x{w}={h * w} tokens; the N x N affinity fixes the resolution"
            )
        keep = self._visible(v)
        if keep is not None:  # masked tokens contribute nothing: their columns are zero
            v = v * keep
        return torch.matmul(v.reshape(b, c, h * w), self.affinity.t()).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f"{self.dim}, mode={self.mode!r}"
