"""Fail early, by name, when the metric that checkpoints and early stopping watch is never
logged: the usual slip with a LightningModule of one's own."""

from __future__ import annotations

import lightning.pytorch as pl
from typing_extensions import override

from trainlab.errors import ConfigError


class MonitorCheck(pl.Callback):
    """Checks once, after the sanity check (or else the first validation), that ``monitor``
    was logged, and otherwise stops the run with the names that were.

    Args:
        monitor: the metric ``model.monitor`` names.
    """

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.checked = False

    def _check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.checked:
            return
        self.checked = True
        logged = sorted(trainer.callback_metrics)
        if self.monitor not in logged:
            raise ConfigError(
                f"model.monitor {self.monitor!r} was not logged by "
                f"{type(pl_module).__name__}'s validation (logged: {logged}); log it in "
                "validation_step with self.log, or set model.monitor to a logged val/ metric"
            )

    @override
    def on_sanity_check_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer, pl_module)  # before Lightning clears what the sanity check logged

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer, pl_module)
