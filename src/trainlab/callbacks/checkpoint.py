"""Lightning's ModelCheckpoint with a last.ckpt that always holds the latest state, written once."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from typing_extensions import override


class Checkpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` whose ``last.ckpt`` holds the latest state after every save point,
    written once.

    Since Lightning 2.6, ``save_last=True`` writes ``last.ckpt`` only at steps that also saved a
    top-k checkpoint: with ``save_top_k=1`` it is a copy of the best checkpoint, and resuming
    from it would go back to the best epoch. Here it is written at every save point as well.
    When the best checkpoint was saved at the same step, ``last.ckpt`` links to it instead of
    serialising the same state a second time (on the wide benchmark net, 27 MB an epoch).

    The link is used only for a single best file under a fixed name (``save_top_k=1``, no
    metric in ``filename``): that file is overwritten, never deleted, so the link cannot
    dangle. (Lightning's own ``save_last="link"`` links to the latest checkpoint saved, which
    can be epochs old.) Takes ModelCheckpoint's arguments.
    """

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def _save_latest(self, trainer: pl.Trainer) -> None:
        """Write ``last.ckpt`` where Lightning saved nothing at this step."""
        due = self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0
        if self.save_last and due and not self._should_skip_saving_checkpoint(trainer):
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
            return
        self.save_last = "link"
        try:
            super()._save_last_checkpoint(trainer, monitor_candidates)
        finally:
            self.save_last = True
