"""Split conformal prediction sets for classification (Vovk et al.; Angelopoulos & Bates, 2021).

Fitted on the validation split's class probabilities, a set predictor returns for each new
sample a set of classes that holds the true class with probability at least ``1 - alpha``
(over exchangeable data), whatever the model. Two scores:

- ``aps``, adaptive prediction sets (Romano et al., 2020): the classes in order of probability
  until their mass reaches the threshold, randomised at the last class so that coverage is
  close to exact rather than conservative; sets grow where the model is unsure.
- ``lac`` (Sadinle et al., 2019): every class whose probability is at least ``1 - threshold``;
  the smallest sets on average.

Every set holds at least the most probable class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from trainlab.errors import ConfigError

METHODS = ("aps", "lac")
CONFORMAL_KEY = "trainlab_conformal"  # where a checkpoint keeps the fitted sets


def check_alpha(alpha: float, key: str = "alpha") -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ConfigError(f"{key} must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


@dataclass
class ConformalSets:
    """A fitted set predictor: ``threshold`` is the conformal quantile of the scores."""

    alpha: float
    method: str
    threshold: float
    seed: int = 0

    @classmethod
    def fit(
        cls,
        probs: torch.Tensor,
        labels: torch.Tensor,
        alpha: float,
        method: str = "aps",
        seed: int = 0,
    ) -> ConformalSets:
        """The threshold from calibration probabilities ``(N, K)`` and labels ``(N,)``: the
        ``ceil((N + 1)(1 - alpha)) / N`` quantile of the true classes' scores."""
        alpha = check_alpha(alpha)
        if method not in METHODS:
            raise ConfigError(f"conformal method {method!r} is unknown; use one of {METHODS}")
        n = len(labels)
        scores = _scores(probs, method, _uniform(n, seed)).gather(1, labels.long()[:, None])[:, 0]
        level = math.ceil((n + 1) * (1 - alpha)) / n
        threshold = (
            math.inf if level > 1 else float(torch.quantile(scores, level, interpolation="higher"))
        )
        return cls(alpha, method, threshold, seed)

    def predict(self, probs: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """``(N, K)`` booleans: which classes each sample's set holds."""
        u = _uniform(len(probs), self.seed + 1 if seed is None else seed)
        sets = _scores(probs, self.method, u) <= self.threshold
        sets[torch.arange(len(probs)), probs.argmax(dim=1)] = True  # never an empty set
        return sets

    def state(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "method": self.method,
            "threshold": self.threshold,
            "seed": self.seed,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ConformalSets:
        return cls(
            float(state["alpha"]),
            str(state["method"]),
            float(state["threshold"]),
            int(state["seed"]),
        )


def _uniform(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _scores(probs: torch.Tensor, method: str, u: torch.Tensor) -> torch.Tensor:
    """``(N, K)`` nonconformity of every class: how far down the model's ranking it sits."""
    p = probs.double()
    if method == "lac":
        return 1 - p
    order = p.argsort(dim=1, descending=True)
    ranked = p.gather(1, order)
    mass = ranked.cumsum(dim=1) - u[:, None] * ranked  # randomised at each class's own share
    return torch.empty_like(mass).scatter_(1, order, mass)


def coverage_and_size(sets: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Share of samples whose set holds their class, and the mean set size."""
    covered = sets[torch.arange(len(labels)), labels.long()]
    return {
        "coverage": float(covered.double().mean()),
        "set_size": float(sets.sum(1).double().mean()),
    }


def load_conformal(checkpoint: dict[str, Any]) -> ConformalSets | None:
    """The set predictor saved in a loaded checkpoint, or None."""
    state = checkpoint.get(CONFORMAL_KEY)
    return ConformalSets.from_state(state) if state is not None else None
