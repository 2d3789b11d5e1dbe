"""Regression: MSE loss on a standardised target; MAE and R2 in the target's own units."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanAbsoluteError, MetricCollection, R2Score

from trainlab.models.task import Task


class RegressionTask(Task):
    """Predict one value. The data standardises the target; metrics undo that.

    Args:
        net: outputs ``(B, 1)``.
        target_mean: mean of the training target (from the data).
        target_std: standard deviation of the training target (from the data).
        **kwargs: optimizer, scheduler, monitor and mode of :class:`Task`.
    """

    def __init__(
        self,
        net: nn.Module,
        target_mean: float = 0.0,
        target_std: float = 1.0,
        monitor: str = "val/loss",
        mode: str = "min",
        **kwargs: Any,
    ) -> None:
        super().__init__(net, monitor=monitor, mode=mode, **kwargs)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)

    metric_names = ("loss", "mae", "r2")

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"mae": MeanAbsoluteError(), "r2": R2Score()})

    def _original_units(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.hparams["target_std"] + self.hparams["target_mean"]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, y)

    def metric_inputs(
        self, out: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._original_units(out).flatten(), self._original_units(y).flatten()

    def predict_outputs(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pred": self._original_units(out).flatten()}
