"""A callback the benchmark adds to a real run to time process start to the first step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl


class FirstStepStamp(pl.Callback):
    """Writes the wall-clock time of the first training batch to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self.path.exists():
            self.path.write_text(repr(time.time()))
