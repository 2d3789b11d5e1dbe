"""A W&B run says how it ended: tagged ``diverged`` or ``failed``, with the reason."""

from __future__ import annotations

import logging

import lightning.pytorch as pl
from typing_extensions import override

from trainlab.loggers.wandb import mark_runs

log = logging.getLogger(__name__)


class WandbRunStatus(pl.Callback):
    """Tags each W&B run of the trainer's loggers when training stops on a divergence (a
    callback's ``stop_reason`` that starts with ``diverged``) or raises; the reason goes into the
    run's summary as ``stop_reason``, and a failed run is finished with exit code 1, so W&B
    shows it failed. Other loggers are left alone."""

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for callback in trainer.callbacks:  # type: ignore[attr-defined]
            reason = getattr(callback, "stop_reason", None)
            if isinstance(reason, str) and reason.startswith("diverged"):
                mark_runs(trainer.loggers, "diverged", reason)
                return

    @override
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if trainer.is_global_zero and isinstance(exception, Exception):  # not a Ctrl-C
            reason = f"{type(exception).__name__}: {exception}"
            try:
                mark_runs(trainer.loggers, "failed", reason, True)
            except Exception as err:  # W&B gone too (a lost node): the training error is the news
                log.warning("could not mark the W&B run failed (%s: %s)", type(err).__name__, err)
