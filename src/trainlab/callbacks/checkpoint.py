"""Lightning's ModelCheckpoint with a last.ckpt that holds the latest state, and both files
written sparingly."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from weakref import proxy

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.trainer.states import TrainerFn
from typing_extensions import override

from trainlab.errors import ConfigError


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"callbacks.model_checkpoint.{name} must be a number >= 0, got {value!r}")
    return float(value)


def host_copy(obj: Any, into: Any = None) -> Any:
    """A copy of a checkpoint dict that later training cannot change: every tensor copied to
    host memory, every container copied (``copy.copy`` keeps a state dict's ``_metadata``).

    ``into``, an earlier copy of the same structure that is no longer needed, lends its
    tensors where shapes and dtypes match: copying into memory already mapped is about four
    times faster than into new memory (27 MB: 1.1 ms against 4.7 ms).
    """
    if isinstance(obj, torch.Tensor):
        src = obj.detach()
        if (
            isinstance(into, torch.Tensor)
            and into.device.type == "cpu"
            and into.shape == src.shape
            and into.dtype == src.dtype
            and into.data_ptr() != src.data_ptr()
        ):
            return into.copy_(src)
        return src.to("cpu", copy=True)
    if isinstance(obj, dict):
        earlier = into if isinstance(into, dict) else {}
        out = copy.copy(obj)
        for key, value in obj.items():
            out[key] = host_copy(value, earlier.get(key))
        return out
    if type(obj) is list or type(obj) is tuple:  # not named tuples: deepcopy keeps those
        same = isinstance(into, list | tuple) and len(into) == len(obj)
        old = into if same else [None] * len(obj)
        return type(obj)(host_copy(v, o) for v, o in zip(obj, old, strict=True))
    if obj is None or isinstance(obj, str | bytes | int | float):
        return obj
    return copy.deepcopy(obj)


class Checkpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` whose ``last.ckpt`` is the state to resume from, and which writes
    the best checkpoint at most every ``best_every_seconds``.

    **last.ckpt.** Since Lightning 2.6, ``save_last=True`` writes ``last.ckpt`` only at steps
    that also saved a top-k checkpoint: with ``save_top_k=1`` it is a copy of the best
    checkpoint, and resuming from it goes back to the best epoch. Here ``last.ckpt`` is written
    at epoch ends at most every ``last_every_seconds``, and always when training ends, so a
    resume loses at most that much training. When the best checkpoint holds the same step,
    ``last.ckpt`` links to it instead of serialising the same state twice.

    **best.ckpt.** Writing a checkpoint can cost more than an epoch of a small net (27 MB and
    about 50 ms for the wide benchmark net, whose epoch takes 150 ms), and early in training
    the monitor improves nearly every epoch. So a new best state is copied to host memory
    (1 ms there) and written when ``best_every_seconds`` have passed since the last write, when
    training ends or stops on an exception (Ctrl-C, SIGTERM), before any other checkpoint is
    written (each records the best path and score, which a resume trusts) and before the
    divergence guard keeps it. Only a process killed outright loses it.
    ``best_every_seconds=0`` writes every new best at once, as Lightning does, and holds no
    copy.

    Both are used only for one best file under a fixed name (``save_top_k=1``, no metric in
    ``filename``), which is overwritten, never deleted, so a link cannot dangle. The best state
    is held back only where rank 0 alone writes checkpoints (single device, DDP); sharded
    strategies (FSDP, DeepSpeed) write at once.

    Args:
        last_every_seconds: least time between two writes of ``last.ckpt`` at epoch ends;
            0 writes it at every one.
        best_every_seconds: least time between two writes of the best checkpoint; 0 writes
            each new best at once.
        *args, **kwargs: ModelCheckpoint's.
    """

    def __init__(
        self,
        *args: Any,
        last_every_seconds: float = 60.0,
        best_every_seconds: float = 60.0,
        **kwargs: Any,
    ) -> None:
        self.last_every_seconds = _seconds("last_every_seconds", last_every_seconds)
        self.best_every_seconds = _seconds("best_every_seconds", best_every_seconds)
        super().__init__(*args, **kwargs)
        self._last_written = self._best_written = time.monotonic()
        # A best checkpoint not on disk yet: its path and, on rank 0, its host copy.
        self._pending: tuple[str, dict[str, Any] | None] | None = None
        self._in_epoch_end = False
        self._copying = False  # dumping the state of a new best, to hold it
        self._last_step_written = -1  # the step whose state last.ckpt holds

    # -- when -------------------------------------------------------------------------------
    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_written = self._best_written = time.monotonic()

    @contextmanager
    def _lightning_epoch_end(self) -> Iterator[None]:
        """Around ModelCheckpoint's own epoch-end saving (see :meth:`_save_last_checkpoint`)."""
        self._in_epoch_end = True
        try:
            yield
        finally:
            self._in_epoch_end = False

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with self._lightning_epoch_end():
            super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._write_due(trainer, force=False)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with self._lightning_epoch_end():
            super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._write_due(trainer, force=False)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._write_due(trainer, force=True)
        trainer.strategy.barrier("Checkpoint.on_train_end")  # every rank may read best.ckpt next

    @override
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        super().on_exception(trainer, pl_module, exception)
        self.flush(trainer)  # rank 0 alone, with no collective call: other ranks may be gone

    def _write_due(self, trainer: pl.Trainer, force: bool) -> None:
        """Write the held best checkpoint and ``last.ckpt`` where they are due."""
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        if not fitting or getattr(trainer, "fast_dev_run", False):
            return
        now = time.monotonic()
        if force or now - self._best_written >= self.best_every_seconds:
            self.flush(trainer)  # rank 0 writes alone, so its own clock may decide
        if not self.save_last or self._last_step_written == trainer.global_step:
            return  # last.ckpt holds this state already
        if not force:
            n = self._every_n_epochs
            stale = now - self._last_written >= self.last_every_seconds
            # rank 0's clock decides, so that every rank saves (and waits) together
            due = n >= 1 and (trainer.current_epoch + 1) % n == 0 and stale
            if not trainer.strategy.broadcast(due, src=0):
                return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    # -- the best checkpoint ----------------------------------------------------------------
    def _holds_best_back(self, trainer: pl.Trainer) -> bool:
        rank0_writes = type(trainer.strategy).save_checkpoint is Strategy.save_checkpoint
        return self.best_every_seconds > 0 and self._single_fixed_best() and rank0_writes

    def _single_fixed_best(self) -> bool:
        return self.save_top_k == 1 and self.filename is not None and "{" not in self.filename

    @override
    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        if filepath == self.last_model_path:
            super()._save_checkpoint(trainer, filepath)
            self._last_step_written = trainer.global_step
            return
        if not self._holds_best_back(trainer):
            super()._save_checkpoint(trainer, filepath)
            return
        # What trainer.save_checkpoint writes, taken now, on every rank (the dump may gather).
        self._copying = True
        try:
            checkpoint = trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only)
        finally:
            self._copying = False
        # A best held back and now beaten is never written: its tensors take the new state.
        superseded = self._pending[1] if self._pending is not None else None
        copied = host_copy(checkpoint, superseded) if trainer.is_global_zero else None
        self._pending = (filepath, copied)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if not self._copying:
            # Every checkpoint records this callback's best path and score, and a run resumed
            # from it trusts them (last.ckpt, a SLURM requeue's, trainer.save_checkpoint):
            # that file must hold them.
            self.flush(trainer)

    def flush(self, trainer: pl.Trainer) -> None:
        """Write the best checkpoint held in memory, if there is one."""
        if self._pending is None:
            return
        filepath, checkpoint = self._pending
        self._pending = None
        self._best_written = time.monotonic()
        if checkpoint is not None:
            trainer.strategy.save_checkpoint(checkpoint, filepath)
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    # -- last.ckpt --------------------------------------------------------------------------
    def _links_to_best(self, trainer: pl.Trainer) -> bool:
        just_saved = self._last_global_step_saved == trainer.global_step
        return (
            self.save_last is True
            and self._single_fixed_best()
            and just_saved
            and bool(self._last_checkpoint_saved)
        )

    @override
    def _save_last_checkpoint(
        self, trainer: pl.Trainer, monitor_candidates: dict[str, Any]
    ) -> None:
        if self._in_epoch_end and self._pending is not None:
            # Lightning's own call right after a new best: linking to a best held in memory
            # would mean writing it now. last.ckpt follows its own clock (_write_due).
            return
        # last.ckpt records the best checkpoint's path and score (a resume trusts them), and a
        # link needs its target: the best state goes to disk first.
        self.flush(trainer)
        if not self._links_to_best(trainer):
            super()._save_last_checkpoint(trainer, monitor_candidates)
        else:
            self.save_last = "link"
            try:
                super()._save_last_checkpoint(trainer, monitor_candidates)
            finally:
                self.save_last = True
            self._last_step_written = trainer.global_step
        self._last_written = time.monotonic()
