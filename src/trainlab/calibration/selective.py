"""Selective prediction: answer only when confident enough, abstain otherwise.

Ranking the samples by confidence (the largest class probability) and keeping the top share
gives, for each *coverage* (the share answered), a *selective risk* (the error rate among the
answered): the risk-coverage curve. Its area (AURC, Geifman & El-Yaniv 2017) sums it up: lower
is better, and a model whose confidence ranks its errors last has the smallest. A target risk
is met on new data by a confidence threshold chosen on the validation split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

CHECKPOINT_KEY = "trainlab_selective"  # the validation split's confidences and hits
POINTS = 21  # coverages shown in calibration.json: 0, 0.05, ..., 1


def _ranked(
    confidence: torch.Tensor, hits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Confidences, highest first, whether each of those predictions is right, and the risk
    (error rate) when the ``k`` most confident are answered, for every ``k``."""
    order = torch.argsort(confidence, descending=True, stable=True)
    hits = hits[order].bool()
    risks = torch.cumsum((~hits).double(), 0) / torch.arange(1, len(hits) + 1)
    return confidence[order], hits, risks


def risk_coverage(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """The risk-coverage curve of ``(N, K)`` probabilities: its area (AURC), the full-coverage
    risk, the least AURC any ranking of these predictions could reach, and the risk at
    :data:`POINTS` coverages."""
    if len(probs) == 0:
        raise ValueError("risk_coverage needs at least one sample")
    state = validation_state(probs, labels)  # any split's confidences and hits
    _, hits, risks = _ranked(state["confidence"], state["hits"])
    n, wrong = len(hits), int((~hits).sum())
    kept = torch.arange(1, n + 1, dtype=torch.float64)
    best = torch.cat([torch.zeros(n - wrong), torch.arange(1, wrong + 1)]).double() / kept
    curve = {}
    for coverage in torch.linspace(0, 1, POINTS).tolist():
        k = max(1, math.ceil(coverage * n))
        curve[f"{coverage:.2f}"] = float(risks[k - 1])
    return {
        "aurc": float(risks.mean()),
        "aurc_optimal": float(best.mean()),  # errors ranked last: the floor for this accuracy
        "risk_at_full_coverage": float(risks[-1]),
        "risk_by_coverage": curve,
        "samples": n,
    }


@dataclass(frozen=True)
class Abstention:
    """A confidence threshold: predictions below it abstain."""

    target_risk: float
    threshold: float
    val_coverage: float
    val_risk: float


def choose_threshold(
    confidence: torch.Tensor, hits: torch.Tensor, target_risk: float
) -> Abstention:
    """The lowest confidence threshold whose answered validation samples have a risk at most
    ``target_risk`` (the most coverage that meets it); a threshold above 1 (abstain always)
    when no share of the validation split is that accurate."""
    if not 0.0 <= target_risk <= 1.0:
        raise ValueError(f"the target risk must be in [0, 1], got {target_risk}")
    confidence, hits, risks = _ranked(confidence, hits)
    # a threshold keeps every sample at or above it: only cut between distinct confidences
    last_of_value = torch.ones(len(hits), dtype=torch.bool)
    last_of_value[:-1] = confidence[1:] != confidence[:-1]
    meets = torch.nonzero((risks <= target_risk) & last_of_value).flatten()
    if len(meets) == 0:
        return Abstention(target_risk, math.inf, 0.0, math.nan)
    k = int(meets[-1]) + 1
    return Abstention(target_risk, float(confidence[k - 1]), k / len(hits), float(risks[k - 1]))


def validation_state(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a checkpoint keeps to choose thresholds later: the validation split's calibrated
    confidences and whether each prediction was right."""
    confidence, pred = probs.max(dim=1)
    return {"confidence": confidence.float().clone(), "hits": (pred == labels).clone()}


def load_validation_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The validation confidences and hits a checkpoint keeps (:func:`validation_state`),
    checked, or None where it has none.

    Raises:
        ValueError: the entry is not two 1-D tensors of one length, confidences in [0, 1].
    """
    state = checkpoint.get(CHECKPOINT_KEY)
    if state is None:
        return None
    confidence = state.get("confidence") if isinstance(state, dict) else None
    hits = state.get("hits") if isinstance(state, dict) else None
    if not (isinstance(confidence, torch.Tensor) and isinstance(hits, torch.Tensor)):
        raise ValueError(f"its {CHECKPOINT_KEY} entry is not a confidence and a hits tensor")
    if confidence.dim() != 1 or hits.shape != confidence.shape:
        raise ValueError(f"its {CHECKPOINT_KEY} tensors are not of one length")
    if not confidence.is_floating_point() or not bool(
        ((confidence >= 0) & (confidence <= 1)).all()
    ):
        raise ValueError(f"its {CHECKPOINT_KEY} confidences are not in [0, 1]")
    return {"confidence": confidence, "hits": hits.bool()}
