"""A small convolutional network for (C, H, W) images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from trainlab.nets.layers import (
    ActivationSpec,
    check_dropout,
    check_positive_ints,
    make_activation,
)

POOLS = ("max", "avg", "none")


class CNN(nn.Module):
    """Conv blocks ``conv -> [batch norm] -> act -> pool``, then an MLP head.

    Each block halves the spatial size while it is at least 2, so the net fits 8x8 digits
    and 28x28 MNIST alike.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_outputs: number of classes (logits) or regression targets.
        channels: output channels of each conv block.
        kernel_size: odd kernel size; padding keeps the spatial size.
        pool: ``"max"``, ``"avg"`` or ``"none"`` after each block.
        batch_norm: batch normalisation after each convolution.
        activation: name or ``nn.Module`` class.
        hidden: width of the head's hidden layer; 0 for a linear head.
        dropout: dropout before the head's layers, in [0, 1).

    Raises:
        ValueError: the input is not an image, or a setting is out of range.
    """

    modalities: ClassVar[frozenset[str]] = frozenset({"image"})

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        pool: str = "max",
        batch_norm: bool = True,
        activation: ActivationSpec = "relu",
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"CNN needs (C, H, W) images, got input_shape {tuple(input_shape)}")
        chans = check_positive_ints(channels, "channels", allow_empty=False)
        if kernel_size <= 0 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        if pool not in POOLS:
            raise ValueError(f"pool {pool!r} is unknown; use one of {POOLS}")
        if hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {hidden}")
        p = check_dropout(dropout)
        c, h, w = input_shape
        blocks: list[nn.Module] = []
        for out in chans:
            blocks.append(
                nn.Conv2d(c, out, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
            )
            if batch_norm:
                blocks.append(nn.BatchNorm2d(out))
            blocks.append(make_activation(activation))
            if pool != "none" and min(h, w) >= 2:
                blocks.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            c = out
        self.features = nn.Sequential(*blocks)
        head: list[nn.Module] = [nn.Flatten()]
        width = c * h * w
        if hidden:
            head += [nn.Dropout(p), nn.Linear(width, hidden), make_activation(activation)]
            width = hidden
        head += [nn.Dropout(p), nn.Linear(width, num_outputs)]
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, C, H, W) -> (B, num_outputs)
