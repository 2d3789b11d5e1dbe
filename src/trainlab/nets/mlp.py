"""Multi-layer perceptron on the flattened input, with each optional part a switch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from trainlab.nets.layers import (
    ActivationSpec,
    check_dropout,
    check_norm,
    check_positive_ints,
    flat_size,
    make_activation,
    make_norm,
)


class Block(nn.Module):
    """``Linear -> [norm] -> act -> [dropout]``, plus the input when ``residual`` (through a
    bias-free projection where the width changes)."""

    def __init__(
        self,
        width: int,
        size: int,
        activation: ActivationSpec,
        dropout: float,
        norm: str | None,
        residual: bool,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(width, size)]
        if norm is not None:
            layers.append(make_norm(norm, size))
        layers.append(make_activation(activation))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)
        self.skip: nn.Module | None = None
        if residual:
            self.skip = nn.Identity() if width == size else nn.Linear(width, size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return out if self.skip is None else out + self.skip(x)


class MLP(nn.Module):
    """``Input -> [input norm] -> hidden blocks -> [bottleneck] -> head``.

    Each hidden block is ``Linear -> [norm] -> act -> [dropout]`` with an optional skip
    connection; every optional part is a switch, so an ablation removes one at a time.

    Args:
        input_shape: shape of one sample; flattened, so images and sequences work too.
        num_outputs: number of classes (logits) or regression targets.
        hidden_sizes: width of each hidden block; empty gives a linear model.
        activation: name (``"relu"``, ``"leaky_relu"``, ...) or ``nn.Module`` class.
        dropout: dropout probability after each hidden block, in [0, 1).
        norm: ``None``, ``"batch"`` or ``"layer"`` normalisation before each activation.
        input_norm: ``None``, ``"batch"`` or ``"layer"`` normalisation of the flattened input,
            learnt with the net (on top of the data's fixed normalisation).
        residual: add each block's input to its output (skip connections).
        bottleneck: width of a narrow linear layer (no activation) before the head; 0 for none.

    Raises:
        ValueError: a size is not positive, dropout is outside [0, 1), or a norm is unknown.
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
        input_norm: str | None = None,
        residual: bool = False,
        bottleneck: int = 0,
    ) -> None:
        super().__init__()
        sizes = check_positive_ints(hidden_sizes, "hidden_sizes")
        p = check_dropout(dropout)
        check_norm(norm, "norm")
        check_norm(input_norm, "input_norm")
        if isinstance(bottleneck, bool) or not isinstance(bottleneck, int) or bottleneck < 0:
            raise ValueError(f"bottleneck must be a width >= 0 (0: none), got {bottleneck!r}")
        width = flat_size(input_shape)
        self.input_norm = nn.Identity() if input_norm is None else make_norm(input_norm, width)
        blocks: list[nn.Module] = []
        for size in sizes:
            blocks.append(Block(width, size, activation, p, norm, residual))
            width = size
        if bottleneck:
            blocks.append(nn.Linear(width, bottleneck))
            width = bottleneck
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.input_norm(x.flatten(1))))  # (B, ...) -> (B, outputs)
