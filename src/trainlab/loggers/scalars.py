"""Send scalars straight to every logger, without ``self.log``."""

from __future__ import annotations

from collections.abc import Mapping

import lightning.pytorch as pl


def log_scalars(trainer: pl.Trainer, metrics: Mapping[str, float], epoch: bool = False) -> None:
    """Log ``metrics`` to every logger of ``trainer`` at the current optimiser step.

    For values nothing monitors: ``self.log`` costs about 0.3 ms a call in Lightning and holds
    step values back until its next ``log_every_n_steps`` boundary. ``epoch=True`` adds the
    epoch, as Lightning does for epoch-level metrics.
    """
    row = {**metrics, "epoch": trainer.current_epoch} if epoch else dict(metrics)
    for logger in trainer.loggers:
        logger.log_metrics(row, step=trainer.global_step)
