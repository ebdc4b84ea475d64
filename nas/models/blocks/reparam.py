"""Structural re-parameterisation of depthwise convolutions.

Ding et al., "Scaling Up Your Kernels to 31x31: Revisiting Large Kernel Design in CNNs"
(RepLKNet), CVPR 2022 (arXiv 2203.06717), section 3 (guideline 3) and the ``ReparamLargeKernelConv``
of the official code: a large K x K depthwise conv trained with a parallel small k x k depthwise
conv, both followed by BN, merged after training into one K x K conv with bias.

Maths (running statistics only): per output channel ``t = gamma / sqrt(var + eps)``,
``W' = t W`` and ``b' = beta + (b - mean) t``; the fused small kernel is zero-padded by
``(K - k) / 2`` on each side, centred, and added to the large one, and the biases add.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvBranch", "RepDWConv", "fuse_conv_bn", "reparameterize_modules"]


def _check_kernels(kernel_size: int, small_kernel: int) -> None:
    """Raise ValueError unless (K, k) can be merged exactly: K odd, k = 0 or odd with k < K."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: expected an odd integer >= 1, got {kernel_size}")
    if small_kernel < 0 or (small_kernel > 0 and small_kernel % 2 == 0):
        raise ValueError(
            f"small_kernel: expected 0 (no branch) or an odd integer, got {small_kernel}"
        )
    if small_kernel >= kernel_size:
        raise ValueError(
            f"small_kernel: expected 0 or an odd integer < kernel_size={kernel_size}, got {small_kernel}"
        )
    # unreachable for odd K and k; kept because it is the stated condition for centred kernels
    if small_kernel and (kernel_size - small_kernel) % 2:
        raise ValueError(
            f"kernel_size - small_kernel must be even, got {kernel_size} - {small_kernel}"
        )


def fuse_conv_bn(
    conv_weight: torch.Tensor, conv_bias: torch.Tensor | None, bn: nn.modules.batchnorm._BatchNorm
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BN that follows a conv into the conv: returns ``(weight, bias)``.

    Uses the BN running statistics, so the result equals ``bn(conv(x))`` only in eval mode.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            "fuse_conv_bn: the BN has no running statistics (track_running_stats=False)"
        )
    with torch.no_grad():
        mean, var = bn.running_mean, bn.running_var
        gamma = torch.ones_like(var) if bn.weight is None else bn.weight
        beta = torch.zeros_like(var) if bn.bias is None else bn.bias
        t = gamma / torch.sqrt(var + bn.eps)
        bias = torch.zeros_like(mean) if conv_bias is None else conv_bias
        weight = conv_weight * t.reshape(-1, *([1] * (conv_weight.ndim - 1)))
        return weight.detach().clone(), (beta + (bias - mean) * t).detach().clone()


class ConvBranch(nn.Module):
    """One branch: a depthwise conv with "same" padding, then BN when ``bn`` (else a conv bias)."""

    def __init__(self, channels: int, kernel_size: int, *, bn: bool, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            channels,
            channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=channels,
            bias=not bn,
        )
        self.bn = nn.BatchNorm2d(channels) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x if self.bn is None else self.bn(x)

    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the single conv equivalent to this branch in eval mode."""
        conv = self.conv
        k = conv.kernel_size[0]
        if conv.kernel_size != (k, k) or k % 2 == 0:
            raise ValueError(
                f"cannot re-parameterise a non-square or even kernel {conv.kernel_size}"
            )
        if conv.padding != (k // 2, k // 2) or conv.dilation != (1, 1):
            raise ValueError(
                f"cannot re-parameterise: expected 'same' padding {k // 2} and dilation 1, got "
                f"padding {conv.padding}, dilation {conv.dilation}"
            )
        if self.bn is not None:
            return fuse_conv_bn(conv.weight, conv.bias, self.bn)
        bias = torch.zeros(conv.out_channels, dtype=conv.weight.dtype, device=conv.weight.device)
        bias = bias if conv.bias is None else conv.bias
        return conv.weight.detach().clone(), bias.detach().clone()


class RepDWConv(nn.Module):
    """RepLKNet's re-parameterisable depthwise conv: DW K x K (+ parallel DW k x k), summed.

    Training form: ``large(x) + small(x)``, each a ``ConvBranch`` (conv, then BN when enabled,
    otherwise a conv bias). ``reparameterize()`` replaces both by ``fused``, one K x K depthwise
    conv with bias, and sets ``large`` and ``small`` to None.

    Args:
        channels: number of channels (groups = channels).
        kernel_size: odd K of the large kernel, padding K // 2.
        small_kernel: odd k < K of the parallel branch, or 0 for none (RepLKNet uses 5).
        bn: BN after the large conv (RepLKNet); if False the large conv has a bias (ConvNeXt).
        small_bn: BN after the small conv; if False it has a bias.
        stride: shared by both branches.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        *,
        small_kernel: int = 0,
        bn: bool = True,
        small_bn: bool = True,
        stride: int = 1,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels: expected a positive integer, got {channels}")
        if stride < 1:
            raise ValueError(f"stride: expected a positive integer, got {stride}")
        _check_kernels(kernel_size, small_kernel)
        self.channels, self.kernel_size, self.small_kernel = channels, kernel_size, small_kernel
        self.large: ConvBranch | None = ConvBranch(channels, kernel_size, bn=bn, stride=stride)
        self.small: ConvBranch | None = None
        if small_kernel > 0:
            self.small = ConvBranch(channels, small_kernel, bn=small_bn, stride=stride)
        self.fused: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(x)
        out = self.large(x)
        if self.small is not None:
            out = out + self.small(x)
        return out

    def reparameterize(self) -> None:
        """Merge BN and the small branch into ``fused`` (exact in eval mode); no-op once fused."""
        if self.fused is not None:
            return
        if self.training:
            raise RuntimeError(
                "RepDWConv.reparameterize(): the module is in training mode; BN must use its "
                "running statistics for an exact merge, call .eval() first"
            )
        conv = self.large.conv
        weight, bias = self.large.fused_kernel()
        k_large = weight.shape[-1]
        if self.small is not None:
            small_w, small_b = self.small.fused_kernel()
            k_small = small_w.shape[-1]
            _check_kernels(k_large, k_small)
            if self.small.conv.stride != conv.stride or self.small.conv.groups != conv.groups:
                raise ValueError("cannot re-parameterise: the branches differ in stride or groups")
            pad = (k_large - k_small) // 2
            weight = weight + F.pad(small_w, [pad, pad, pad, pad])
            bias = bias + small_b
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            k_large,
            stride=conv.stride,
            padding=k_large // 2,
            groups=conv.groups,
            bias=True,
            device=weight.device,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            fused.weight.copy_(weight)
            fused.bias.copy_(bias)
        self.fused = fused
        self.large = None
        self.small = None

    def extra_repr(self) -> str:
        state = "fused" if self.fused is not None else "train-form"
        return f"{self.channels}, kernel_size={self.kernel_size}, small_kernel={self.small_kernel}, {state}"


def reparameterize_modules(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every ``reparameterize()`` method called.

    The original is untouched; on an already-deployed model this is a copy with no change.
    """
    deployed = copy.deepcopy(model).eval()
    for module in list(deployed.modules()):
        method = getattr(module, "reparameterize", None)
        if callable(method):
            method()
    return deployed
