"""Post-hoc calibrators fit on validation logits: temperature, vector and Platt scaling.

Each maps logits ``(N, K)`` to calibrated logits ``(N, K)``; softmax gives the probabilities.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import ConfigError


class Calibrator(nn.Module):
    """A calibrator learns a few parameters by minimising the NLL of validation logits."""

    method = ""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def fit(self, logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 200) -> Calibrator:
        """Fit on ``logits`` ``(N, K)`` and ``labels`` ``(N,)``; returns itself."""
        # Lightning evaluates under inference mode; fitting needs autograd and ordinary tensors.
        with torch.inference_mode(False), torch.enable_grad():
            logits, labels = logits.detach().clone().double(), labels.clone().long()
            self.double()
            opt = torch.optim.LBFGS(
                self.parameters(), lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe"
            )

            def closure() -> torch.Tensor:
                opt.zero_grad()
                loss = F.cross_entropy(self(logits), labels)
                loss.backward()
                return loss

            opt.step(closure)
        return self.float()

    def parameters_dict(self) -> dict[str, Any]:
        """The fitted parameters as plain numbers, for reports."""
        return {k: v.detach().flatten().tolist() for k, v in self.state_dict().items()}


class TemperatureScaler(Calibrator):
    """Divide the logits by one temperature ``T > 0`` (Guo et al., 2017): the predicted class
    never changes, only how confident the model is."""

    method = "temperature"

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.log_temperature = nn.Parameter(torch.zeros(()))  # T = exp(.) stays positive

    @property
    def temperature(self) -> float:
        return float(self.log_temperature.detach().exp())

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.log_temperature.exp().to(logits.dtype)

    def parameters_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature}


class VectorScaler(Calibrator):
    """A scale and a bias per class: ``logits * w + b``."""

    method = "vector"

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.weight = nn.Parameter(torch.ones(num_classes))
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits * self.weight.to(logits.dtype) + self.bias.to(logits.dtype)


class PlattScaler(Calibrator):
    """Binary tasks: ``p(class 1) = sigmoid(a * (z1 - z0) + b)`` (Platt, 1999)."""

    method = "platt"

    def __init__(self, num_classes: int) -> None:
        if num_classes != 2:
            raise ConfigError(
                f"Platt scaling is for binary tasks; this one has {num_classes} classes "
                "(use method=temperature or method=vector)"
            )
        super().__init__(num_classes)
        self.a = nn.Parameter(torch.ones(()))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        margin = logits[:, 1] - logits[:, 0]
        z = self.a.to(logits.dtype) * margin + self.b.to(logits.dtype)
        return torch.stack([torch.zeros_like(z), z], dim=1)  # softmax of (0, z) = (1 - p, p)

    def parameters_dict(self) -> dict[str, Any]:
        return {"a": float(self.a.detach()), "b": float(self.b.detach())}


METHODS: dict[str, type[Calibrator]] = {
    "temperature": TemperatureScaler,
    "vector": VectorScaler,
    "platt": PlattScaler,
}


def make_calibrator(method: str, num_classes: int) -> Calibrator:
    """A calibrator by name; ``auto`` is Platt scaling for two classes, else temperature.

    Raises:
        ConfigError: an unknown method, or Platt scaling for more than two classes.
    """
    if method == "auto":
        method = "platt" if num_classes == 2 else "temperature"
    if method not in METHODS:
        raise ConfigError(
            f"calibration method {method!r} is unknown; use one of {[*METHODS, 'auto']}"
        )
    return METHODS[method](num_classes)


CHECKPOINT_KEY = "trainlab_calibrator"


def calibrator_state(calibrator: Calibrator) -> dict[str, Any]:
    """What goes into a checkpoint: plain values and tensors only."""
    return {
        "method": calibrator.method,
        "num_classes": calibrator.num_classes,
        "state_dict": {k: v.detach().clone() for k, v in calibrator.state_dict().items()},
    }


def load_calibrator(checkpoint: dict[str, Any]) -> Calibrator | None:
    """The calibrator saved in a loaded checkpoint, or None if it has none."""
    state = checkpoint.get(CHECKPOINT_KEY)
    if state is None:
        return None
    calibrator = make_calibrator(state["method"], state["num_classes"])
    calibrator.load_state_dict(state["state_dict"])
    return calibrator.eval()
