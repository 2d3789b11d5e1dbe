"""Classification: cross-entropy loss; metrics see class probabilities."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import ConfigError
from trainlab.models.base import Model


class ClassificationModel(Model):
    """Classify into ``num_classes`` classes from the net's logits.

    Args:
        net: outputs ``(B, num_classes)`` logits.
        num_classes: number of classes, from the data.
        class_names: names in class-index order, kept in the checkpoint for predictions.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        **kwargs: optimizer, scheduler, metrics, monitor and mode of :class:`Model`.
    """

    default_metrics: ClassVar[dict[str, Any]] = {
        "acc": {"class": "MulticlassAccuracy", "average": "micro"},
        "f1": {"class": "MulticlassF1Score", "average": "macro"},
    }

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        class_names: list[str] | None = None,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if num_classes < 2:
            raise ConfigError(
                f"classification needs at least 2 classes, got num_classes={num_classes}"
            )
        if class_names is not None and len(class_names) != num_classes:
            raise ConfigError(f"{len(class_names)} class names for {num_classes} classes")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"model.label_smoothing must be in [0, 1), got {label_smoothing}")
        self.num_classes = num_classes
        super().__init__(net, **kwargs)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "metrics"], logger=False)

    def metric_arguments(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes}

    def metric_labels(self) -> list[str] | None:
        return self.hparams.get("class_names")

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y, label_smoothing=self.hparams["label_smoothing"])

    def metric_inputs(
        self, out: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return out.softmax(dim=1), y  # (B, K) probabilities: accuracy, AUROC and ECE alike

    def predict_outputs(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        probs = out.softmax(dim=1)  # (B, K)
        return {"pred": probs.argmax(dim=1), "probs": probs, "logits": out}
