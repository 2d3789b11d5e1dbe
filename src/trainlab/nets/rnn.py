"""Recurrent networks (RNN, LSTM, GRU) for (T, F) sequences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from trainlab.nets.layers import check_dropout

CELLS: dict[str, type[nn.RNN] | type[nn.LSTM] | type[nn.GRU]] = {
    "rnn": nn.RNN,
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}


class RNN(nn.Module):
    """A recurrent encoder whose final hidden state feeds a linear head.

    Reads ``(B, T, F)`` feature sequences, or ``(B, T)`` token ids when ``vocab_size`` is
    given: ids are embedded, and each sequence is packed to its own length (id 0 is padding),
    so the final state is that of its last real token.

    Args:
        input_shape: ``(time_steps, features)`` of one sequence, or ``(time_steps,)`` of ids.
        num_outputs: number of classes (logits) or regression targets.
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        hidden_size: hidden units per direction.
        num_layers: stacked recurrent layers.
        bidirectional: read the sequence both ways and concatenate the final states.
        dropout: dropout between stacked layers and before the head, in [0, 1).
        vocab_size: number of token ids (0: padding); None for feature sequences.
        embed_dim: width of the token embedding.

    Raises:
        ValueError: the input is not a sequence, or a setting is out of range.
    """

    modalities: ClassVar[frozenset[str]] = frozenset({"sequence", "text"})

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        vocab_size: int | None = None,
        embed_dim: int = 64,
    ) -> None:
        super().__init__()
        tokens = vocab_size is not None
        if len(input_shape) != (1 if tokens else 2):
            wanted = "(T,) token ids" if tokens else "(T, F) sequences"
            raise ValueError(f"RNN needs {wanted}, got input_shape {tuple(input_shape)}")
        if cell not in CELLS:
            raise ValueError(f"cell {cell!r} is unknown; use one of {sorted(CELLS)}")
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError(
                f"hidden_size and num_layers must be positive, got {hidden_size} and {num_layers}"
            )
        p = check_dropout(dropout)
        self.embed = (
            nn.Embedding(int(vocab_size), embed_dim, padding_idx=0)  # type: ignore[arg-type]
            if tokens
            else None
        )
        self.rnn = CELLS[cell](
            input_size=embed_dim if tokens else input_shape[1],
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=p if num_layers > 1 else 0.0,
        )
        self.directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(p)
        self.head = nn.Linear(hidden_size * self.directions, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:  # (B, T) ids: pack each sequence to its own length
            lengths = (x != 0).sum(dim=1).clamp(min=1).cpu()
            packed = pack_padded_sequence(
                self.embed(x), lengths, batch_first=True, enforce_sorted=False
            )
            _, state = self.rnn(packed)  # final states are in the batch's own order
        else:
            _, state = self.rnn(x)  # x: (B, T, F)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, H)
        last = h_n[-self.directions :].transpose(0, 1).flatten(1)  # (B, dirs * H)
        return self.head(self.dropout(last))
