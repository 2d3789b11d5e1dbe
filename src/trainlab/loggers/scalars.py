"""Send scalars straight to every logger, without ``self.log``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl


def log_scalars(trainer: pl.Trainer, metrics: Mapping[str, Any]) -> None:
    """Log ``metrics`` to every logger of ``trainer`` at the current optimiser step.

    For values measured every so many steps: ``self.log`` in a step hook holds a value back to
    its next ``log_every_n_steps`` boundary and drops it when the two intervals do not meet.
    """
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=trainer.global_step)
