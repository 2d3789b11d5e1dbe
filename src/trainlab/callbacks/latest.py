"""checkpoints/last.ckpt: the latest state, to resume from, written at most every so often."""

from __future__ import annotations

import time
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from trainlab.compat import SigtermHold
from trainlab.errors import ConfigError
from trainlab.trust.files import rotate, sync_file


class LatestCheckpoint(Checkpoint):
    """Writes the latest training state with ``trainer.save_checkpoint`` at an epoch's end when
    ``every_seconds`` have passed since the last write, and always when training ends.

    Lightning logs an epoch's train metrics after its ``on_train_epoch_end`` hooks, where a
    checkpoint is written; a run resumed from that checkpoint does not log them again. So the
    state written at an epoch's end is staged beside ``last.ckpt`` and swapped in (with
    :func:`~trainlab.trust.files.rotate`, ``last.ckpt`` present at every instant, the one
    before kept as ``<name>.previous.ckpt``) when the next epoch starts, once the loggers have
    saved the epoch's rows: ``metrics.csv`` holds every row before ``last.ckpt``'s step. A kill
    in between resumes from the state before, and the epoch is trained again exactly.

    Lightning's ``ModelCheckpoint`` writes the latest state every epoch. A checkpoint of the
    wide benchmark net (2048, 1024) is 27 MB and took 40 ms to write, a quarter of its 166 ms
    epoch on a 2-core CPU; a job killed between two writes loses at most ``every_seconds`` of
    training. ``every_seconds=0`` writes at every epoch's end. The best checkpoint stays with
    ``ModelCheckpoint``.

    Args:
        dirpath: the checkpoint folder.
        filename: the file's name without ``.ckpt``.
        every_seconds: least time between two writes at epoch ends.
    """

    def __init__(self, dirpath: str, filename: str = "last", every_seconds: float = 60.0) -> None:
        if (
            isinstance(every_seconds, bool)
            or not isinstance(every_seconds, int | float)
            or not (every_seconds >= 0)
        ):
            raise ConfigError(
                f"callbacks.last_checkpoint.every_seconds must be a number >= 0, got "
                f"{every_seconds!r}"
            )
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.previous = Path(dirpath) / f"{filename}.previous.ckpt"
        self.staged = Path(dirpath) / f"{filename}.next.ckpt"
        self.every_seconds = float(every_seconds)
        self.last_model_path = ""
        self._written_at = time.monotonic()
        self._written_step = -1
        self._staged_step: int | None = None
        self.stopped_by_signal = False
        self._hold = SigtermHold()

    def _stage(self, trainer: pl.Trainer) -> None:
        """Write the state as it is to the staged file (every rank calls it; rank 0 writes)."""
        trainer.save_checkpoint(self.staged, weights_only=False)  # the full state, to resume
        self._staged_step = trainer.global_step
        self._written_at, self._written_step = time.monotonic(), trainer.global_step

    def _swap_in(self, trainer: pl.Trainer) -> None:
        """Save the loggers' rows, then make the staged state ``last.ckpt``."""
        if self._staged_step is None:
            return
        self._staged_step = None
        for logger in trainer.loggers:
            logger.save()
        if trainer.is_global_zero and self.staged.is_file():
            sync_file(self.staged)
            rotate(self.staged, self.path, self.previous)
        self.last_model_path = str(self.path)

    def _skip(self, trainer: pl.Trainer) -> bool:
        return trainer.sanity_checking or bool(getattr(trainer, "fast_dev_run", False))

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._written_at = time.monotonic()

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._skip(trainer):
            return
        due = time.monotonic() - self._written_at >= self.every_seconds
        if trainer.strategy.broadcast(due, src=0):  # rank 0's clock: every rank saves together
            self._stage(trainer)

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swap_in(trainer)  # the epoch before has logged its last rows by now

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._skip(trainer):
            return
        if self._written_step != trainer.global_step:
            self._stage(trainer)
        self._swap_in(trainer)

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit" and not self._skip(trainer):
            self._hold.start(trainer)  # a stop mid-validation would resume past it

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._hold.end(trainer)

    @override
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """On SIGTERM (what SLURM sends before a time limit or a preemption), write the state
        as it is, mid-epoch too, so that the job resumes where it stopped. A signal during the
        epoch's validation is held until it has ended (:class:`~trainlab.compat.SigtermHold`).
        On another error a staged state not yet swapped in is removed: ``last.ckpt`` holds
        the state before it, which resumes exactly."""
        if isinstance(exception, SIGTERMException) and not self._skip(trainer):
            self._stage(trainer)
            self._swap_in(trainer)
            self.stopped_by_signal = True
        elif trainer.is_global_zero:  # e.g. a full disk: last.ckpt stays the state to resume
            self.staged.unlink(missing_ok=True)
