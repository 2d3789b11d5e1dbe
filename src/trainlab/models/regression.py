"""Regression: MSE loss on a standardised target; metrics in the target's own units."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.models.base import Model


class RegressionModel(Model):
    """Predict one value. The data standardises the target; metrics and predictions undo that.

    Args:
        net: outputs ``(B, 1)``.
        target_mean: mean of the training target (from the data).
        target_std: standard deviation of the training target (from the data).
        **kwargs: optimizer, scheduler, metrics, monitor and mode of :class:`Model`.
    """

    default_metrics: ClassVar[dict[str, Any]] = {"mae": "MeanAbsoluteError", "r2": "R2Score"}

    def __init__(
        self, net: nn.Module, target_mean: float = 0.0, target_std: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(net, **kwargs)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "metrics"], logger=False)

    def original_units(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.hparams["target_std"] + self.hparams["target_mean"]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, y)

    def metric_inputs(
        self, out: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.original_units(out).flatten(), self.original_units(y).flatten()

    def predict_outputs(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pred": self.original_units(out).flatten()}
