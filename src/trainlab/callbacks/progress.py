"""A cheap progress display: one line per epoch, refreshed in place at most a few times a second."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar
from typing_extensions import override

from trainlab.errors import ConfigError


def format_metrics(metrics: dict[str, Any]) -> str:
    return "  ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(metrics.items())
    )


class EpochProgress(ProgressBar):
    """Prints ``epoch 3/50  12.3 s  train/loss 0.12  val/acc 0.97 ...`` once per epoch.

    Per batch it only compares the clock with the last refresh, so short epochs cost nothing
    measurable; long epochs show ``batch i/n`` in place every ``refresh_seconds``.

    Args:
        refresh_seconds: least time between in-place updates within an epoch (0: none).
        stream: where to print; standard output by default.
    """

    def __init__(self, refresh_seconds: float = 1.0, stream: TextIO | None = None) -> None:
        super().__init__()
        if refresh_seconds < 0:
            raise ConfigError(
                f"callbacks.progress_bar.refresh_seconds must be >= 0, got {refresh_seconds}"
            )
        self.refresh_seconds = refresh_seconds
        self.stream = stream
        self._enabled = True
        self._epoch_start = 0.0
        self._last_refresh = 0.0
        self._partial = False
        self._finished: tuple[int, float] | None = None

    @override
    def disable(self) -> None:
        self._enabled = False

    @override
    def enable(self) -> None:
        self._enabled = True

    def _write(self, text: str, end: str = "\n") -> None:
        out = self.stream or sys.stdout
        out.write(("\r" if self._partial else "") + text + end)
        out.flush()
        self._partial = end == ""

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print_finished(trainer)
        self._epoch_start = self._last_refresh = time.monotonic()

    @override
    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._enabled or not self.refresh_seconds:
            return
        now = time.monotonic()
        if now - self._last_refresh >= self.refresh_seconds:
            self._last_refresh = now
            total = self.total_train_batches
            self._write(f"epoch {trainer.current_epoch + 1}: batch {batch_idx + 1}/{total}", end="")

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The model logs this epoch's train metrics after this hook; the line is printed when
        # the next epoch starts, or training ends.
        self._finished = (trainer.current_epoch, time.monotonic() - self._epoch_start)

    def _print_finished(self, trainer: pl.Trainer) -> None:
        if not self._enabled or self._finished is None:
            return
        epoch, seconds = self._finished
        self._finished = None
        shown = {
            k: float(v)
            for k, v in trainer.progress_bar_metrics.items()
            if isinstance(v, int | float)
        }
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        self._write(f"epoch {epoch + 1}/{epochs}  {seconds:.2f} s  {format_metrics(shown)}")

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print_finished(trainer)
