"""Classification: cross-entropy loss, accuracy and macro F1."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassConfusionMatrix

from trainlab.errors import ConfigError
from trainlab.models.task import Task


def confusion_metrics(confmat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Accuracy and macro F1 from a ``(K, K)`` confusion matrix (rows: targets, cols: predictions).

    Macro F1 averages the classes that occur as a target or a prediction, as torchmetrics'
    ``MulticlassF1Score(average="macro")`` does.
    """
    cm = confmat.double()
    tp = cm.diagonal()
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    seen = (tp + fp + fn) > 0
    f1 = torch.where(seen, 2 * tp / (2 * tp + fp + fn).clamp_min(1), torch.zeros_like(tp))
    acc = tp.sum() / cm.sum().clamp_min(1)
    return {"acc": acc.float(), "f1": (f1.sum() / seen.sum().clamp_min(1)).float()}


class ClassificationTask(Task):
    """Classify into ``num_classes`` classes from the net's logits.

    Args:
        net: outputs ``(B, num_classes)`` logits.
        num_classes: number of classes, from the data.
        class_names: names in class-index order, kept in the checkpoint for predictions.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        **kwargs: optimizer, scheduler, monitor and mode of :class:`Task`.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        class_names: list[str] | None = None,
        label_smoothing: float = 0.0,
        monitor: str = "val/loss",
        mode: str = "min",
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
        super().__init__(net, monitor=monitor, mode=mode, **kwargs)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)

    metric_names = ("loss", "acc", "f1")

    def make_metrics(self) -> MetricCollection:
        # One confusion matrix per split is the only per-step state (one bincount, about 7x
        # cheaper than updating accuracy and F1 separately); torchmetrics syncs it across ranks.
        # Labels are checked when the data is loaded, so it skips its own checks.
        return MetricCollection(
            {"confmat": MulticlassConfusionMatrix(self.num_classes, validate_args=False)}
        )

    def epoch_metrics(self, computed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return confusion_metrics(computed["confmat"])

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y, label_smoothing=self.hparams["label_smoothing"])

    def metric_inputs(
        self, out: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return out.argmax(dim=1), y

    def predict_outputs(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        probs = out.softmax(dim=1)  # (B, K)
        return {"pred": probs.argmax(dim=1), "probs": probs, "logits": out}
