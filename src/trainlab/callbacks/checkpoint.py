"""Lightning's ModelCheckpoint with a last.ckpt that holds the latest state, written sparingly."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from typing_extensions import override

from trainlab.errors import ConfigError


class Checkpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` whose ``last.ckpt`` is the state to resume from.

    Since Lightning 2.6, ``save_last=True`` writes ``last.ckpt`` only at steps that also saved a
    top-k checkpoint: with ``save_top_k=1`` it is a copy of the best checkpoint, and resuming
    from it goes back to the best epoch. Here ``last.ckpt`` is also written at the other save
    points (epoch ends), at most every ``last_every_seconds``, and always when training ends,
    so a resume loses at most that much training. When the best checkpoint was saved at the
    same step, ``last.ckpt`` links to it instead of serialising the same state twice (on the
    wide benchmark net, 27 MB).

    The link is used only for a single best file under a fixed name (``save_top_k=1``, no
    metric in ``filename``): that file is overwritten, never deleted, so the link cannot
    dangle. (Lightning's own ``save_last="link"`` links to the latest checkpoint saved, which
    can be epochs old.)

    Args:
        last_every_seconds: least time between two writes of ``last.ckpt`` at epoch ends;
            0 writes it at every one.
        *args, **kwargs: ModelCheckpoint's.
    """

    def __init__(self, *args: Any, last_every_seconds: float = 60.0, **kwargs: Any) -> None:
        seconds = last_every_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
            raise ConfigError(
                "callbacks.model_checkpoint.last_every_seconds must be a number >= 0, "
                f"got {last_every_seconds!r}"
            )
        super().__init__(*args, **kwargs)
        self.last_every_seconds = float(last_every_seconds)
        self._last_written = time.monotonic()

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_written = time.monotonic()

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer, force=False)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer, force=False)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._save_latest(trainer, force=True)

    def _save_latest(self, trainer: pl.Trainer, force: bool) -> None:
        """Write ``last.ckpt`` where Lightning saved nothing at this step, when it is due."""
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return
        if not force:
            n = self._every_n_epochs
            stale = time.monotonic() - self._last_written >= self.last_every_seconds
            # rank 0's clock decides, so that every rank saves (and waits) together
            due = n >= 1 and (trainer.current_epoch + 1) % n == 0 and stale
            if not trainer.strategy.broadcast(due, src=0):
                return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _links_to_best(self, trainer: pl.Trainer) -> bool:
        fixed_name = self.filename is not None and "{" not in self.filename
        just_saved = self._last_global_step_saved == trainer.global_step
        return (
            self.save_last is True
            and self.save_top_k == 1
            and fixed_name
            and just_saved
            and bool(self._last_checkpoint_saved)
        )

    @override
    def _save_last_checkpoint(
        self, trainer: pl.Trainer, monitor_candidates: dict[str, Any]
    ) -> None:
        if not self._links_to_best(trainer):
            super()._save_last_checkpoint(trainer, monitor_candidates)
        else:
            self.save_last = "link"
            try:
                super()._save_last_checkpoint(trainer, monitor_candidates)
            finally:
                self.save_last = True
        self._last_written = time.monotonic()
