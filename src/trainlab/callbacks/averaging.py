"""Stochastic weight averaging on Lightning's own ``WeightAveraging`` callback."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import WeightAveraging


class SWA(WeightAveraging):
    """An equal average of the weights at the end of every epoch from ``start_epoch`` on
    (Izmailov et al., 2018); batch-norm statistics are averaged with the weights.

    Until the average holds an epoch, validation and the end of training use the weights being
    trained (the stock callback would use the untrained copy it starts from).

    Args:
        start_epoch: the first epoch (0-based) whose weights enter the average.
        **kwargs: passed to ``WeightAveraging`` (``device``, ``use_buffers``, ``avg_fn``).
    """

    def __init__(self, start_epoch: int = 10, **kwargs: Any) -> None:
        if isinstance(start_epoch, bool) or not isinstance(start_epoch, int) or start_epoch < 0:
            raise ValueError(f"start_epoch must be an integer >= 0, got {start_epoch!r}")
        super().__init__(**kwargs)
        self.start_epoch = start_epoch
        self.averaged_epochs = 0

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return epoch_idx is not None and epoch_idx >= self.start_epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self.should_update(epoch_idx=trainer.current_epoch):
            self.averaged_epochs += 1

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averaged_epochs:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averaged_epochs:
            super().on_validation_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averaged_epochs:
            super().on_train_end(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "averaged_epochs": self.averaged_epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.averaged_epochs = int(state_dict.get("averaged_epochs", 0))
