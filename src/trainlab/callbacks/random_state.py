"""Random generator states in every checkpoint, for exact resume with any LightningModule."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import override

from trainlab.compat import load_pending_loader_states


class RandomState(pl.Callback):
    """Saves torch's (and CUDA's) random generator states into each checkpoint and restores
    them on resume.

    Lightning restores weights, optimisers, schedulers and loops, but not the generators; without
    them a resumed run draws other dropout masks than an uninterrupted one. (The batch order of
    the in-memory data depends only on the seed and the epoch already, and a loader that saves
    its position, as the in-memory one does, continues mid-epoch.) trainlab adds this callback
    to every training run.
    """

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        load_pending_loader_states(trainer)

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["rng_states"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    @override
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.get("rng_states", {})
        if "torch" in states:
            torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
