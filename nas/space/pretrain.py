"""What FCMAE pre-training asks of a candidate, checked where spaces are validated (no torch):
the mask patch must tile the image, leave a patch visible, and line up with every stage's
resolution (``nas.pretrain.fcmae`` keeps the mask exactly under these conditions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.errors import SpaceError
from nas.space.candidate import Candidate

__all__ = ["check_fcmae", "check_mask", "patch_grid"]


def patch_grid(candidate: Candidate, patch: int | None) -> tuple[int, int]:
    """(patch, patches per side): ``patch`` defaults to the network's total stride."""
    p = patch or candidate.stage_stride(candidate.num_stages - 1)
    return p, candidate.image_size // p


def check_fcmae(candidate: Candidate, *, patch: int | None, mask_ratio: float, source: str) -> None:
    """SpaceError unless FCMAE can keep the mask exactly for this candidate and settings."""
    p, side = patch_grid(candidate, patch)
    if p < 1 or candidate.image_size % p:
        raise SpaceError(
            source,
            "pretrain.patch",
            f"expected a divisor of image_size {candidate.image_size}, got {p}",
        )
    if not 0.0 < mask_ratio < 1.0:
        raise SpaceError(
            source, "pretrain.mask_ratio", f"expected a number in (0, 1), got {mask_ratio}"
        )
    if int(side * side * (1 - mask_ratio)) < 1:
        raise SpaceError(
            source,
            "pretrain.mask_ratio",
            f"{mask_ratio} over {side}x{side} patches of {p} px leaves no patch visible; use a "
            "smaller pretrain.patch or mask_ratio",
        )
    for i in range(candidate.num_stages):
        res = candidate.image_size // candidate.stage_stride(i)
        if candidate.image_size % candidate.stage_stride(i) or (res % side and side % res):
            raise SpaceError(
                source,
                "pretrain.patch",
                f"stage {i} runs at {res}x{res}, which neither divides nor is a multiple of the "
                f"{side}x{side} patch grid (patch {p}, image {candidate.image_size})",
            )


def check_mask(candidate: Candidate, settings: Mapping[str, Any], *, source: str = "space") -> None:
    """``check_fcmae`` with a ``pretrain:`` mapping's settings (and their defaults)."""
    check_fcmae(
        candidate,
        patch=settings.get("patch"),
        mask_ratio=float(settings.get("mask_ratio", 0.6)),
        source=source,
    )
