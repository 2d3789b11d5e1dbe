"""Temporal convolutions for (T, F) sequences: 1-D signals, raw audio, time series."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from trainlab.nets.cnn import ConvBlock, check_conv, conv_head
from trainlab.nets.layers import (
    ActivationSpec,
    check_dropout,
    check_norm,
    check_positive_ints,
    make_norm,
)

READOUTS = ("avg", "max", "flatten")


class TCN(nn.Module):
    """``(T, F) -> [input norm] -> temporal conv blocks -> readout -> [bottleneck] -> head``.

    Each block convolves along the time axis (the ``F`` features are its input channels), then
    pools by 2 while at least 2 steps are left; with ``dilation_growth=2`` the dilation doubles
    from block to block, so the receptive field grows exponentially (a TCN). The readout pools
    over the remaining time steps (``avg`` or ``max``: the same pattern anywhere in the sequence
    gives the same features) or keeps their order (``flatten``). Every optional part is a switch,
    as in :class:`~trainlab.nets.MLP` and :class:`~trainlab.nets.CNN`.

    Args:
        input_shape: ``(time_steps, features)`` of one sequence.
        num_outputs: number of classes (logits) or regression targets.
        channels: output channels of each block.
        kernel_size: odd kernel size along time.
        dilation_growth: the dilation of block ``i`` is ``dilation_growth ** i`` (1: none).
        pool: ``"max"``, ``"avg"`` or ``"none"`` after each block.
        readout: ``"avg"``, ``"max"`` (over time) or ``"flatten"``.
        norm: ``"batch"``, ``"layer"`` or ``None`` after each convolution.
        activation: name or ``nn.Module`` class.
        hidden: width of the head's hidden (bottleneck) layer; 0 for a linear head.
        dropout: dropout before the head's layers, in [0, 1).
        input_norm: ``"batch"``, ``"layer"`` or ``None``: a learnt normalisation of the input.
        residual: add each block's input to its output (skip connections).

    Raises:
        ValueError: the input is not a sequence, or a setting is out of range.
    """

    modalities: ClassVar[frozenset[str]] = frozenset({"sequence"})

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int] = (32, 64, 64),
        kernel_size: int = 7,
        dilation_growth: int = 1,
        pool: str = "max",
        readout: str = "avg",
        norm: str | None = "batch",
        activation: ActivationSpec = "relu",
        hidden: int = 128,
        dropout: float = 0.0,
        input_norm: str | None = None,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if len(input_shape) != 2:
            raise ValueError(
                f"TCN needs (time_steps, features) sequences, got input_shape {tuple(input_shape)}"
            )
        chans = check_positive_ints(channels, "channels", allow_empty=False)
        check_conv(kernel_size, pool, hidden)
        if isinstance(dilation_growth, bool) or dilation_growth < 1:
            raise ValueError(f"dilation_growth must be an integer >= 1, got {dilation_growth}")
        if readout not in READOUTS:
            raise ValueError(f"readout {readout!r} is unknown; use one of {READOUTS}")
        p = check_dropout(dropout)
        check_norm(norm, "norm")
        check_norm(input_norm, "input_norm")
        steps, c = input_shape
        self.input_norm = nn.Identity() if input_norm is None else make_norm(input_norm, c, dims=1)
        blocks: list[nn.Module] = []
        for i, out in enumerate(chans):
            dilation = dilation_growth**i
            blocks.append(
                ConvBlock(
                    c, out, kernel_size, norm, activation, residual, dims=1, dilation=dilation
                )
            )
            if pool != "none" and steps >= 2:
                blocks.append(nn.MaxPool1d(2) if pool == "max" else nn.AvgPool1d(2))
                steps //= 2
            c = out
        self.features = nn.Sequential(*blocks)
        self.readout = readout
        width = c * steps if readout == "flatten" else c
        self.head = nn.Sequential(*conv_head(width, hidden, num_outputs, p, activation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.input_norm(x.transpose(1, 2)))  # (B, T, F) -> (B, C, T')
        if self.readout == "avg":
            h = h.mean(dim=2)
        elif self.readout == "max":
            h = h.amax(dim=2)
        else:
            h = h.flatten(1)
        return self.head(h)  # (B, num_outputs)
