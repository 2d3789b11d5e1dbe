"""The project's model: trainlab's classifier with a loss of its own."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from trainlab.models import ClassificationModel


class FocalClassifier(ClassificationModel):
    """Focal loss: down-weights the samples the net already gets right, by ``(1 - p)**gamma``.

    Args:
        net: outputs ``(B, num_classes)`` logits.
        gamma: focusing strength; 0 is cross-entropy.
        **kwargs: what ``ClassificationModel`` takes (num_classes, optimizer, monitor ...).
    """

    def __init__(self, net: nn.Module, gamma: float = 2.0, **kwargs: Any) -> None:
        if gamma < 0:
            raise ValueError(f"model.gamma must be >= 0, got {gamma}")
        super().__init__(net, **kwargs)
        self.gamma = gamma

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(out, dim=1).gather(1, y[:, None]).squeeze(1)  # (B,)
        return (-((1 - log_p.exp()) ** self.gamma) * log_p).mean()
