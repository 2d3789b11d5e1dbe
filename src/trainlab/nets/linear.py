"""The baseline: logistic (or linear) regression on the flattened input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from trainlab.nets.layers import flat_size


class LinearNet(nn.Module):
    """One affine layer on the flattened input: the baseline every other net must beat.

    Args:
        input_shape: shape of one sample, e.g. ``(64,)`` or ``(1, 8, 8)``.
        num_outputs: number of classes (logits) or regression targets.
    """

    modalities: ClassVar[frozenset[str]] = frozenset({"tabular", "image", "sequence"})

    def __init__(self, input_shape: Sequence[int], num_outputs: int) -> None:
        super().__init__()
        self.fc = nn.Linear(flat_size(input_shape), num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))  # (B, *input_shape) -> (B, num_outputs)
