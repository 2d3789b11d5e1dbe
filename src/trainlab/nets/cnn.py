"""A small convolutional network for (C, H, W) images."""

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
    make_activation,
    make_norm,
)

POOLS = ("max", "avg", "none")


class ConvBlock(nn.Module):
    """``conv -> [norm] -> act``, plus the input when ``residual`` (through a 1x1 convolution
    where the channels change). ``dims=2`` for images, ``dims=1`` along time (with
    ``dilation``); padding keeps the size."""

    def __init__(
        self,
        channels: int,
        out: int,
        kernel_size: int,
        norm: str | None,
        activation: ActivationSpec,
        residual: bool,
        dims: int = 2,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        padding = dilation * (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            conv(channels, out, kernel_size, padding=padding, dilation=dilation, bias=norm is None)
        ]
        if norm is not None:
            layers.append(make_norm(norm, out, dims))
        layers.append(make_activation(activation))
        self.layers = nn.Sequential(*layers)
        self.skip: nn.Module | None = None
        if residual:
            self.skip = nn.Identity() if channels == out else conv(channels, out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return out if self.skip is None else out + self.skip(x)


def check_conv(kernel_size: int, pool: str, hidden: int) -> None:
    """The settings every convolutional net here shares: an odd kernel, a known pooling and a
    non-negative bottleneck width."""
    if kernel_size <= 0 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if pool not in POOLS:
        raise ValueError(f"pool {pool!r} is unknown; use one of {POOLS}")
    if hidden < 0:
        raise ValueError(f"hidden must be >= 0, got {hidden}")


def conv_head(
    width: int, hidden: int, num_outputs: int, dropout: float, activation: ActivationSpec
) -> list[nn.Module]:
    """``[dropout -> linear(hidden) -> act] -> dropout -> linear(num_outputs)`` over ``width``
    pooled or flattened features; without the bottleneck when ``hidden`` is 0."""
    head: list[nn.Module] = []
    if hidden:
        head += [nn.Dropout(dropout), nn.Linear(width, hidden), make_activation(activation)]
        width = hidden
    return [*head, nn.Dropout(dropout), nn.Linear(width, num_outputs)]


class CNN(nn.Module):
    """``Input -> [input norm] -> conv blocks -> [bottleneck] -> head``.

    A conv block is ``conv -> [norm] -> act`` with an optional skip connection, then pooling;
    every optional part is a switch, so an ablation removes one at a time.

    Each block halves the spatial size while it is at least 2, so the net fits 8x8 digits
    and 28x28 MNIST alike.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_outputs: number of classes (logits) or regression targets.
        channels: output channels of each conv block.
        kernel_size: odd kernel size; padding keeps the spatial size.
        pool: ``"max"``, ``"avg"`` or ``"none"`` after each block.
        norm: ``"batch"``, ``"layer"`` (one group over channels and pixels) or ``None`` after
            each convolution.
        activation: name or ``nn.Module`` class.
        hidden: width of the head's hidden (bottleneck) layer; 0 for a linear head.
        dropout: dropout before the head's layers, in [0, 1).
        input_norm: ``"batch"``, ``"layer"`` or ``None``: a learnt normalisation of the input
            image (on top of the data's fixed normalisation).
        residual: add each conv block's input to its output (skip connections).

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
        norm: str | None = "batch",
        activation: ActivationSpec = "relu",
        hidden: int = 128,
        dropout: float = 0.0,
        input_norm: str | None = None,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"CNN needs (C, H, W) images, got input_shape {tuple(input_shape)}")
        chans = check_positive_ints(channels, "channels", allow_empty=False)
        check_conv(kernel_size, pool, hidden)
        p = check_dropout(dropout)
        check_norm(norm, "norm")
        check_norm(input_norm, "input_norm")
        c, h, w = input_shape
        self.input_norm = nn.Identity() if input_norm is None else make_norm(input_norm, c, dims=2)
        blocks: list[nn.Module] = []
        for out in chans:
            blocks.append(ConvBlock(c, out, kernel_size, norm, activation, residual))
            if pool != "none" and min(h, w) >= 2:
                blocks.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            c = out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(), *conv_head(c * h * w, hidden, num_outputs, p, activation)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.input_norm(x)))  # (B, C, H, W) -> (B, num_outputs)
