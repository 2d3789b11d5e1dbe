"""A model's outputs over a whole split, read through the DataModule's own dataloaders, so that
calibration, ``eval`` and ``predict`` work with any DataModule and any LightningModule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning.pytorch as pl
import torch

from trainlab.errors import ConfigError

LOADER_SPLITS = ("train", "val", "test", "predict")


def split_loader(dm: Any, split: str) -> Iterable[Any]:
    """The batches of a whole split, as one process reads it: the unsharded batches of a
    DataModule of tensor splits (in-memory, text); any other DataModule's
    ``<split>_dataloader()`` (called outside Lightning, which would shard it under DDP)."""
    from trainlab.data.loader import TensorSplits

    if split not in LOADER_SPLITS:
        raise ConfigError(f"split {split!r} is unknown; use one of {LOADER_SPLITS}")
    if isinstance(dm, TensorSplits):
        return dm.loader("test" if split == "predict" else split, shuffle=False, shard=False)
    return getattr(dm, f"{split}_dataloader")()


@torch.no_grad()
def gather(model: pl.LightningModule, loader: Iterable[Any]) -> tuple[torch.Tensor, Any]:
    """``model(x)`` over every batch of ``loader``, in eval mode, on the model's device.

    Batches are ``(x, y)`` pairs, or inputs alone. Returns the outputs ``(N, num_outputs)`` on
    the CPU and the targets ``(N, ...)``, or None where the batches carry none.
    """
    was_training = model.training
    model.eval()
    outs, targets = [], []
    try:
        for batch in loader:
            x, y = (
                batch[:2] if isinstance(batch, list | tuple) and len(batch) > 1 else (batch, None)
            )
            if isinstance(x, list | tuple) and len(x) == 1:
                x = x[0]
            outs.append(model(x.to(model.device)).float().cpu())
            if y is not None:
                targets.append(y.cpu())
    finally:
        model.train(was_training)
    if not outs:
        raise ConfigError(f"the dataloader of {type(loader).__name__} yielded no batches")
    return torch.cat(outs), torch.cat(targets) if targets else None


def predictions(
    model: pl.LightningModule, out: torch.Tensor, task: str, target_stats: Any = None
) -> dict[str, torch.Tensor]:
    """What a prediction holds for outputs ``out`` of ``model``: the model's own
    ``predict_outputs`` where it has one; else class probabilities (classification) or values
    in the target's units, undoing the data's standardisation (regression)."""
    own = getattr(model, "predict_outputs", None)
    if callable(own):
        return dict(own(out))
    if task == "classification":
        probs = out.softmax(dim=1)  # (B, K)
        return {"pred": probs.argmax(dim=1), "probs": probs, "logits": out}
    mean, std = target_stats if target_stats is not None else (0.0, 1.0)
    return {"pred": out.flatten() * std + mean}


def split_logits(
    model: pl.LightningModule, datamodule: Any, split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, K)`` and labels ``(N,)`` of a whole split, read through its dataloader."""
    logits, labels = gather(model, split_loader(datamodule, split))
    if labels is None:
        raise ConfigError(f"calibration: the {split} batches of the data hold no labels")
    return logits, labels
