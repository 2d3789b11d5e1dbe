"""Multi-layer perceptron on the flattened input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from trainlab.nets.layers import (
    ActivationSpec,
    check_dropout,
    check_positive_ints,
    flat_size,
    make_activation,
)

NORMS = ("batch", "layer")


class MLP(nn.Module):
    """``Linear -> [norm] -> act -> dropout`` per hidden layer, then a linear head.

    Args:
        input_shape: shape of one sample; flattened, so images and sequences work too.
        num_outputs: number of classes (logits) or regression targets.
        hidden_sizes: width of each hidden layer; empty gives a linear model.
        activation: name (``"relu"``) or ``nn.Module`` class.
        dropout: dropout probability after each hidden layer, in [0, 1).
        norm: ``None``, ``"batch"`` or ``"layer"`` normalisation before the activation.

    Raises:
        ValueError: a size is not positive, dropout is outside [0, 1), or norm is unknown.
    """

    modalities: ClassVar[frozenset[str]] = frozenset({"tabular", "image", "sequence"})

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        hidden_sizes: Sequence[int] = (256, 128),
        activation: ActivationSpec = "relu",
        dropout: float = 0.0,
        norm: str | None = None,
    ) -> None:
        super().__init__()
        sizes = check_positive_ints(hidden_sizes, "hidden_sizes")
        p = check_dropout(dropout)
        if norm is not None and norm not in NORMS:
            raise ValueError(f"norm {norm!r} is unknown; use one of {NORMS} or null")
        layers: list[nn.Module] = []
        width = flat_size(input_shape)
        for size in sizes:
            layers.append(nn.Linear(width, size))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(size))
            elif norm == "layer":
                layers.append(nn.LayerNorm(size))
            layers.append(make_activation(activation))
            if p > 0:
                layers.append(nn.Dropout(p))
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x.flatten(1)))  # (B, *input_shape) -> (B, num_outputs)
