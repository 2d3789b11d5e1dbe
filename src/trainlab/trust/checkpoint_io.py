"""Checkpoints written whole or not at all (see :mod:`trainlab.trust.files`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from trainlab.trust.files import move_into_place, temporary_for


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO``, writing to a temporary file beside the checkpoint,
    syncing it, then renaming it over the checkpoint: a kill mid-write leaves the earlier
    ``best.ckpt`` (or ``last.ckpt``) whole, never a cut-off one."""

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_for(target)
        super().save_checkpoint(checkpoint, tmp, storage_options)
        move_into_place(tmp, target)
