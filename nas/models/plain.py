"""The plain macro: stem -> stages (a stride-2 transition before each later stage) -> head, with
the stems, transitions and heads of the three papers selected by name."""

from __future__ import annotations

import torch
from torch import nn

from nas.models.parts import drop_path_rates, make_head, make_stem, make_transition, stage_blocks
from nas.space.candidate import Candidate

__all__ = ["PlainNet"]


class PlainNet(nn.Module):
    """Hierarchical network: stem, stages with stride-2 transitions, classification head."""

    def __init__(self, c: Candidate):
        super().__init__()
        self.stem = make_stem(c.stem, c.in_chans, c.widths[0])
        rates = drop_path_rates(c)
        self.transitions = nn.ModuleList(
            [nn.Identity()]
            + [
                make_transition(c.downsample, c.widths[i - 1], c.widths[i])
                for i in range(1, c.num_stages)
            ]
        )
        self.stages = nn.ModuleList([stage_blocks(c, i, rates[i]) for i in range(c.num_stages)])
        self.head = make_head(c.head, c.widths[-1], c.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for transition, stage in zip(self.transitions, self.stages):
            x = stage(transition(x))
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
