"""Checkpoints written whole or not at all (see :mod:`trainlab.trust.files`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from trainlab.trust.files import save_torch


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO``, writing to a temporary file beside the checkpoint,
    syncing it, then renaming it over the checkpoint: a kill mid-write leaves the earlier
    ``best.ckpt`` (or ``last.ckpt``) whole, never a cut-off one, and a full disk leaves no
    temporary file and an error naming the checkpoint."""

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if storage_options is not None:
            super().save_checkpoint(checkpoint, target, storage_options)  # refuses them
        save_torch(checkpoint, target)
