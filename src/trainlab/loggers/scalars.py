"""Send scalars straight to every logger, without ``self.log``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl


def epoch_step(trainer: pl.Trainer) -> int:
    """The step Lightning logs epoch-level metrics at: during fit, the index of the last
    optimiser step taken (its counter has moved past it when a train epoch ends); in
    ``validate`` and ``test``, the number of steps taken."""
    step = trainer.fit_loop.epoch_loop._batches_that_stepped
    return max(step - 1, 0) if trainer.training else step


def log_scalars(trainer: pl.Trainer, metrics: Mapping[str, Any], epoch: bool = False) -> None:
    """Log ``metrics`` to every logger of ``trainer``.

    For values nothing monitors: ``self.log`` costs about 0.3 ms a call in Lightning and holds
    step values back until its next ``log_every_n_steps`` boundary. Step values go in at the
    current optimiser step; ``epoch=True`` adds the epoch and puts them at the step Lightning
    gives epoch metrics (:func:`epoch_step`), in the same row.
    """
    if epoch:
        row = {**metrics, "epoch": trainer.current_epoch}
        step = epoch_step(trainer)
    else:
        row, step = dict(metrics), trainer.global_step
    for logger in trainer.loggers:
        logger.log_metrics(row, step=step)
