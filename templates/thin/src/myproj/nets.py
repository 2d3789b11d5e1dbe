"""The project's net: a plain nn.Module, every part a switch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn


class FourierMLP(nn.Module):
    """Random Fourier features of the input, then an MLP: smooth curved boundaries, fast.

    Args:
        input_shape: shape of one sample, ``(features,)``.
        num_outputs: classes (logits) or regression targets.
        features: number of Fourier features (sines and cosines of random projections).
        scale: standard deviation of the random projections (higher: wigglier boundaries).
        hidden: width of the hidden layer; 0 for a linear read-out of the features.
        dropout: dropout before the read-out.
    """

    modalities: ClassVar[frozenset[str]] = frozenset({"tabular"})

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        features: int = 64,
        scale: float = 3.0,
        hidden: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)  # the projection is part of the net
        projection = scale * torch.randn(math.prod(input_shape), features, generator=generator)
        self.register_buffer("projection", projection)
        layers: list[nn.Module] = []
        width = 2 * features
        if hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.head = nn.Sequential(*layers, nn.Dropout(dropout), nn.Linear(width, num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.projection  # (B, features)
        return self.head(torch.cat([z.sin(), z.cos()], dim=1))  # (B, num_outputs)
