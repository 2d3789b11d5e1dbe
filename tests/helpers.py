"""Callbacks the end-to-end tests add to a run from the command line (``+callbacks.x=...``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning.pytorch as pl
import torch


class RecordRankWeights(pl.Callback):
    """After fit, each rank writes a digest of its weights and what it trained with."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        digest = hashlib.sha256()
        for name, tensor in sorted(pl_module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        dropouts = [m.p for m in pl_module.modules() if isinstance(m, torch.nn.Dropout)]
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "weights": digest.hexdigest(),
            "dropout": dropouts,
            "steps": trainer.global_step,
        }
        self.dirpath.mkdir(parents=True, exist_ok=True)
        (self.dirpath / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
