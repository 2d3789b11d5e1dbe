"""Exact resume with any LightningModule and DataModule: the random generator states in every
checkpoint, and a training loader that saves its position."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import override

from trainlab.compat import load_pending_loader_states
from trainlab.data.resumable import ExactTrainLoader


class RandomState(pl.Callback):
    """Saves torch's (and CUDA's) random generator states into each checkpoint and restores
    them on resume.

    Lightning restores weights, optimisers, schedulers and loops, but not the generators; without
    them a resumed run draws other dropout masks than an uninterrupted one. (The batch order of
    the in-memory data depends only on the seed and the epoch already, and a loader that saves
    its position, as the in-memory one does, continues mid-epoch.) trainlab adds this callback
    to every training run.

    During ``fit`` it also stands in for the DataModule's ``train_dataloader``
    (:class:`~trainlab.data.resumable.ExactTrainLoader`): a plain ``DataLoader`` there gets an
    order drawn from the seed and the epoch and a saved position, so that it resumes exactly
    too, with any number of workers; a loader it cannot make so is named at resume.
    """

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        dm = getattr(trainer, "datamodule", None)
        if stage == "fit" and dm is not None:
            own = dm.__dict__.get("train_dataloader")
            original = own.original if isinstance(own, ExactTrainLoader) else dm.train_dataloader
            dm.train_dataloader = ExactTrainLoader(original, trainer)

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        dm = getattr(trainer, "datamodule", None)
        if (
            stage == "fit"
            and dm is not None
            and isinstance(dm.__dict__.get("train_dataloader"), ExactTrainLoader)
        ):
            del dm.train_dataloader  # the DataModule's own method again

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
