"""Is the model learning at all? Catches a run that exits normally but never trains."""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import override

from trainlab.errors import ConfigError

log = logging.getLogger(__name__)


def fingerprint(module: torch.nn.Module) -> list[float]:
    """Sum and sum of squares of every trainable parameter (float64), read back at once: any
    optimiser step changes them."""
    params = [p.detach().double() for p in module.parameters() if p.requires_grad]
    if not params:
        return []
    return torch.stack([t for p in params for t in (p.sum(), p.pow(2).sum())]).tolist()


def loss_stalled(first: float, current: float, min_change: float) -> bool:
    """True when ``current`` lies within ``min_change`` (a fraction) of ``first``."""
    return abs(current - first) <= min_change * abs(first)


class LearningCheck(pl.Callback):
    """Warns, in the log and ``diagnostics.json``, when training does not learn:

    - one of the first ``patience + 1`` epochs took optimiser steps yet ended with every
      trainable parameter unchanged (a zero learning rate, frozen weights, a step that never
      runs backward);
    - after ``patience`` epochs the training loss is still within ``min_change`` of its first
      epoch's value.

    Reading the parameters cost 9 ms an epoch on a 27 MB net, so only the first epochs, where a
    run that cannot learn shows it, are read.

    Args:
        patience: epochs after the first before the loss test applies.
        min_change: the least relative change of the training loss that counts as moving.
        loss_key: the logged training loss.
    """

    def __init__(
        self, patience: int = 3, min_change: float = 0.01, loss_key: str = "train/loss"
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(
                f"callbacks.learning_check.patience must be an int >= 1, got {patience!r}"
            )
        if not 0 <= min_change < 1:
            raise ConfigError(
                f"callbacks.learning_check.min_change must be in [0, 1), got {min_change!r}"
            )
        self.patience, self.min_change, self.loss_key = patience, min_change, loss_key
        self.events: list[dict[str, Any]] = []
        self._fingerprint: list[float] | None = None  # the fingerprint at the last epoch start
        self._started = False
        self._steps = 0  # the global step then
        self._losses: list[float] = []

    def _warn(self, kind: str, epoch: int, message: str) -> None:
        if any(e["kind"] == kind for e in self.events):
            return
        self.events.append({"kind": kind, "epoch": epoch, "message": message})
        log.warning("NOT LEARNING: %s", message)

    def _epoch_done(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Check the epoch that just ended (called at the next epoch start and at train end,
        when the model has logged the epoch's training loss)."""
        epoch = trainer.current_epoch - 1
        early = epoch <= self.patience
        now = fingerprint(pl_module) if early else None
        stepped = trainer.global_step > self._steps
        if early and self._fingerprint is not None and stepped and now == self._fingerprint:
            self._warn(
                "no_update",
                epoch,
                f"epoch {epoch} took {trainer.global_step - self._steps} optimiser steps but "
                "changed no parameter. Check the learning rate, which parameters require "
                "gradients, and that training_step returns the loss (or calls backward itself).",
            )
        self._fingerprint, self._steps = now, trainer.global_step
        loss = trainer.callback_metrics.get(self.loss_key)
        if loss is None:
            return
        self._losses.append(float(loss))
        first, current = self._losses[0], self._losses[-1]
        if len(self._losses) > self.patience and loss_stalled(first, current, self.min_change):
            self._warn(
                "loss_stalled",
                epoch,
                f"after {len(self._losses)} epochs {self.loss_key} is {current:.4g}, within "
                f"{self.min_change:.0%} of its first epoch's {first:.4g}. Check the learning "
                "rate, the labels, and that the data reaches the model.",
            )

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._started:
            self._started = True
            self._fingerprint, self._steps = fingerprint(pl_module), trainer.global_step
        else:
            self._epoch_done(trainer, pl_module)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._started:
            self._epoch_done(trainer, pl_module)

    def diagnostics(self) -> dict[str, Any]:
        return {"learning": {"events": self.events, "train_losses": self._losses}}
