"""The generalization gap, train minus validation, per metric and epoch."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from typing_extensions import override


def gaps(logged: dict[str, Any]) -> dict[str, float]:
    """``gap/<name>``: ``train/<name>`` minus ``val/<name>`` for each name logged under both."""
    names = [k[6:] for k in logged if k.startswith("train/") and f"val/{k[6:]}" in logged]
    return {f"gap/{n}": float(logged[f"train/{n}"]) - float(logged[f"val/{n}"]) for n in names}


class GeneralizationGap(pl.Callback):
    """Logs ``gap/loss``, ``gap/acc``, ... for each finished epoch to every logger, in the
    epoch's row. Read once the model has logged the epoch's training metrics (at the next
    epoch's start, or when training ends); nothing monitors the gap.
    """

    def __init__(self) -> None:
        self._logged_epoch = -1

    def _log(self, trainer: pl.Trainer, epoch: int) -> None:
        if epoch <= self._logged_epoch or trainer.sanity_checking:
            return
        values = gaps(dict(trainer.callback_metrics))
        if values:
            self._logged_epoch = epoch
            for logger in trainer.loggers:  # at the step Lightning logs the epoch's metrics
                logger.log_metrics({**values, "epoch": epoch}, step=max(trainer.global_step - 1, 0))

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, trainer.current_epoch - 1)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, trainer.current_epoch - 1)
