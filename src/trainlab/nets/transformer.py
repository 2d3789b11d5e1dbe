"""Transformer encoders: for sequences (features or tokens) and, through patches, for images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from trainlab.nets.layers import check_dropout, check_positive_ints

POOLING = ("cls", "mean")


class Encoder(nn.Module):
    """Learned positions, ``depth`` pre-norm self-attention blocks, and pooling to one vector.

    Args:
        length: tokens per sample (without the class token).
        width: the model width ``d_model``.
        depth: encoder blocks.
        heads: attention heads; must divide ``width``.
        mlp_ratio: the feed-forward width as a multiple of ``width``.
        dropout: dropout in attention and feed-forward layers, in [0, 1).
        pooling: ``"cls"`` (a learned class token) or ``"mean"`` (over the unpadded tokens).

    Raises:
        ValueError: a setting is out of range, or ``heads`` does not divide ``width``.
    """

    def __init__(
        self,
        length: int,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: int,
        dropout: float,
        pooling: str,
    ) -> None:
        super().__init__()
        for name, value in (("width", width), ("depth", depth), ("heads", heads)):
            check_positive_ints(value, name)
        check_positive_ints(mlp_ratio, "mlp_ratio")
        if width % heads:
            raise ValueError(f"heads ({heads}) must divide width ({width})")
        if pooling not in POOLING:
            raise ValueError(f"pooling {pooling!r} is unknown; use one of {POOLING}")
        self.pooling = pooling
        extra = 1 if pooling == "cls" else 0
        self.cls = nn.Parameter(torch.zeros(1, 1, width)) if extra else None
        self.position = nn.Parameter(torch.randn(1, length + extra, width) * 0.02)
        block = nn.TransformerEncoderLayer(
            width,
            heads,
            dim_feedforward=mlp_ratio * width,
            dropout=check_dropout(dropout),
            activation="gelu",
            batch_first=True,
            norm_first=True,  # pre-norm: trains without warm-up at these depths
        )
        self.blocks = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, width)`` tokens and an optional ``(B, T)`` mask, True where padded ->
        ``(B, width)``."""
        if self.cls is not None:
            tokens = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1)
            if padding is not None:
                padding = torch.cat([padding.new_zeros(padding.shape[0], 1), padding], dim=1)
        z = self.norm(self.blocks(tokens + self.position, src_key_padding_mask=padding))
        if self.cls is not None:
            return z[:, 0]
        if padding is None:
            return z.mean(dim=1)
        keep = (~padding).unsqueeze(-1).float()  # (B, T, 1)
        return (z * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)


class Transformer(nn.Module):
    """A Transformer encoder over a sequence, pooled into a linear head.

    Reads ``(B, T, F)`` feature sequences, or ``(B, T)`` token ids when ``vocab_size`` is
    given (id 0 is padding: masked in attention and in mean pooling).

    Args:
        input_shape: ``(time_steps, features)``, or ``(time_steps,)`` for tokens.
        num_outputs: number of classes (logits) or regression targets.
        vocab_size: number of token ids (with 0 for padding); None for feature sequences.
        width, depth, heads, mlp_ratio, dropout, pooling: see :class:`Encoder`.

    Raises:
        ValueError: the input shape does not fit, or a setting is out of range.
    """

    modalities: ClassVar[frozenset[str]] = frozenset({"sequence", "text"})

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        vocab_size: int | None = None,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 2,
        dropout: float = 0.1,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        shape = tuple(input_shape)
        tokens = vocab_size is not None
        if len(shape) != (1 if tokens else 2):
            wanted = "(time_steps,) of token ids" if tokens else "(time_steps, features)"
            raise ValueError(f"Transformer reads {wanted}, got input shape {shape}")
        self.embed: nn.Module = (
            nn.Embedding(int(vocab_size), width, padding_idx=0)  # type: ignore[arg-type]
            if tokens
            else nn.Linear(shape[1], width)
        )
        self.tokens = tokens
        self.encoder = Encoder(shape[0], width, depth, heads, mlp_ratio, dropout, pooling)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = (x == 0) if self.tokens else None  # (B, T), True where padded
        return self.head(self.encoder(self.embed(x), padding))  # (B, num_outputs)


class ViT(nn.Module):
    """A Vision Transformer: non-overlapping ``patch`` x ``patch`` patches, embedded linearly,
    through the encoder, with a class token.

    Args:
        input_shape: ``(channels, height, width)``; both sides divisible by ``patch``.
        num_outputs: number of classes (logits) or regression targets.
        patch: patch side in pixels (2 or 4 for the 8x8 digits, 4 or 7 for 28x28 MNIST).
        width, depth, heads, mlp_ratio, dropout, pooling: see :class:`Encoder`.

    Raises:
        ValueError: the input is not an image, or ``patch`` does not divide its sides.
    """

    modalities: ClassVar[frozenset[str]] = frozenset({"image"})

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        patch: int = 2,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 2,
        dropout: float = 0.1,
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(f"ViT reads (channels, height, width) images, got {shape}")
        channels, height, side = shape
        if height % patch or side % patch:
            raise ValueError(f"patch {patch} must divide the image sides {height}x{side}")
        self.patches = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)
        n = (height // patch) * (side // patch)
        self.encoder = Encoder(n, width, depth, heads, mlp_ratio, dropout, pooling)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, width)
        return self.head(self.encoder(tokens))
