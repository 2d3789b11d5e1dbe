"""Calibration metrics: expected and maximum calibration error, NLL, Brier score, bins."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_calibration_error

from trainlab.errors import ConfigError


def check_n_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ConfigError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    return n_bins


def _bins(
    confidence: torch.Tensor, correct: torch.Tensor, edges: torch.Tensor
) -> list[dict[str, float]]:
    """Per bin: its range, sample count, mean confidence and accuracy (empty bins included)."""
    index = torch.bucketize(confidence, edges[1:-1], right=True)  # bin i: [edges[i], edges[i+1])
    rows = []
    for i in range(len(edges) - 1):
        mask = index == i
        n = int(mask.sum())
        rows.append(
            {
                "lower": float(edges[i]),
                "upper": float(edges[i + 1]),
                "count": n,
                "confidence": float(confidence[mask].mean()) if n else 0.0,
                "accuracy": float(correct[mask].float().mean()) if n else 0.0,
            }
        )
    return rows


def _gap(bins: list[dict[str, float]], total: int) -> tuple[float, float]:
    """(expected, maximum) |accuracy - confidence| over the non-empty bins."""
    gaps = [(b["count"], abs(b["accuracy"] - b["confidence"])) for b in bins if b["count"]]
    return sum(n * g for n, g in gaps) / total, max(g for _, g in gaps)


def calibration_report(
    logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15
) -> dict[str, Any]:
    """How well the softmax of ``logits`` ``(N, K)`` matches the accuracy on ``labels`` ``(N,)``.

    Returns ``acc``, ``ece`` (15 equal-width bins, via torchmetrics), ``ece_adaptive`` (bins of
    equal sample counts), ``mce`` (the largest bin gap), ``nll``, ``brier`` (mean squared error
    of the probability vector against the one-hot label, summed over classes), and ``bins``
    (the equal-width bins, for reliability diagrams).
    """
    check_n_bins(n_bins)
    logits, labels = logits.double(), labels.long()
    probs = logits.softmax(dim=1)
    confidence, pred = probs.max(dim=1)
    correct = pred == labels
    k = logits.shape[1]
    ece = multiclass_calibration_error(probs, labels, num_classes=k, n_bins=n_bins, norm="l1")
    mce = multiclass_calibration_error(probs, labels, num_classes=k, n_bins=n_bins, norm="max")
    bins = _bins(confidence, correct, torch.linspace(0, 1, n_bins + 1, dtype=torch.float64))
    # Equal-mass bins: edges at quantiles of the confidence, so each bin holds about N / n_bins.
    order = confidence.sort().values
    cuts = torch.linspace(0, len(order) - 1, n_bins + 1).round().long()
    mass_edges = torch.cat([order.new_zeros(1), order[cuts[1:-1]], order.new_ones(1)])
    ece_adaptive, _ = _gap(_bins(confidence, correct, mass_edges), len(labels))
    onehot = F.one_hot(labels, k).double()
    return {
        "acc": float(correct.double().mean()),
        "ece": float(ece),
        "ece_adaptive": float(ece_adaptive),
        "mce": float(mce),
        "nll": float(F.cross_entropy(logits, labels)),
        "brier": float((probs - onehot).pow(2).sum(dim=1).mean()),
        "bins": bins,
    }


HEADLINE = ("ece", "ece_adaptive", "mce", "nll", "brier")


def headline_metrics(before: dict[str, Any], after: dict[str, Any], split: str) -> dict[str, float]:
    """``<split>/ece``, ... from the uncalibrated report and ``<split>/ece_calibrated``, ...
    (plus the calibrated accuracy) from the calibrated one."""
    metrics = {f"{split}/{k}": before[k] for k in HEADLINE}
    metrics.update({f"{split}/{k}_calibrated": after[k] for k in (*HEADLINE, "acc")})
    return metrics
