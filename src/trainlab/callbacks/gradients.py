"""Gradient health: per-layer gradient norms, with warnings for vanishing and exploding ones."""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import override

from trainlab.errors import ConfigError
from trainlab.loggers.scalars import log_scalars

log = logging.getLogger(__name__)


def vanishing_layers(norms: dict[str, float], ratio: float) -> list[str]:
    """Layers (all but the last) whose gradient norm is below ``ratio`` times the last layer's."""
    names = list(norms)
    last = norms[names[-1]]
    if last <= 0:
        return []
    return [n for n in names[:-1] if norms[n] < ratio * last]


def exploding(total: float, history: list[float], max_norm: float, growth: float) -> str | None:
    """Why ``total`` counts as exploding, or None: above ``max_norm``, not finite, or ``growth``
    times the median of the earlier norms."""
    if not math.isfinite(total):
        return f"the total gradient norm is {total}"
    if total > max_norm:
        return f"the total gradient norm {total:.3g} exceeds {max_norm:.3g}"
    if len(history) >= 5:
        median = sorted(history)[len(history) // 2]
        if median > 0 and total > growth * median:
            return (
                f"the total gradient norm {total:.3g} grew over {growth:g}x its median {median:.3g}"
            )
    return None


class GradientHealth(pl.Callback):
    """Logs ``grad_norm/<layer>`` and ``grad_norm/total`` every ``every_n_steps`` optimiser steps
    (before clipping) and warns, once each, when gradients vanish or explode.

    Layers are the parameters with two or more dimensions (weights of linear, conv and recurrent
    layers), in the order the net defines them.

    Args:
        every_n_steps: how often to measure; each measurement reads the norms back once.
        vanishing_ratio: warn when an earlier layer's norm is below this fraction of the last
            layer's (1e-3: three orders of magnitude).
        max_norm: warn when the total norm exceeds this.
        growth: warn when the total norm exceeds this multiple of its running median.
    """

    def __init__(
        self,
        every_n_steps: int = 25,
        vanishing_ratio: float = 1e-3,
        max_norm: float = 1e3,
        growth: float = 50.0,
    ) -> None:
        if every_n_steps < 1:
            raise ConfigError(
                f"callbacks.gradient_health.every_n_steps must be >= 1, got {every_n_steps}"
            )
        if not 0 < vanishing_ratio < 1:
            raise ConfigError(
                "callbacks.gradient_health.vanishing_ratio must be in (0, 1), "
                f"got {vanishing_ratio}"
            )
        self.every_n_steps = every_n_steps
        self.vanishing_ratio = vanishing_ratio
        self.max_norm = max_norm
        self.growth = growth
        self.history: list[float] = []
        self.events: list[dict[str, Any]] = []

    def _warn(self, kind: str, step: int, message: str, **extra: Any) -> None:
        if any(e["kind"] == kind for e in self.events):
            return  # once per run: the evidence is in diagnostics.json
        self.events.append({"kind": kind, "step": step, "message": message, **extra})
        log.warning(message)

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        step = trainer.global_step
        if step % self.every_n_steps:
            return
        grads = [(n, p.grad) for n, p in pl_module.named_parameters() if p.grad is not None]
        if not grads:
            return
        layer_names = [n for n, g in grads if g.ndim >= 2]
        stacked = torch.stack([g.detach().norm() for _, g in grads]).double()
        values = stacked.tolist()  # one read-back for all norms
        by_name = dict(zip([n for n, _ in grads], values, strict=True))
        total = float(stacked.pow(2).sum().sqrt())
        norms = {n: by_name[n] for n in layer_names}
        log_scalars(
            trainer, {**{f"grad_norm/{n}": v for n, v in norms.items()}, "grad_norm/total": total}
        )

        if len(norms) >= 2 and (weak := vanishing_layers(norms, self.vanishing_ratio)):
            last = layer_names[-1]
            self._warn(
                "vanishing_gradients",
                step,
                f"vanishing gradients at step {step}: layers {weak} get gradients over "
                f"{1 / self.vanishing_ratio:.0f}x smaller than the last layer {last} "
                f"({min(norms[w] for w in weak):.2e} vs {norms[last]:.2e}). Remedies: ReLU-family "
                "activations instead of sigmoid/tanh, residual connections, normalisation layers "
                "(net.norm=batch), or careful initialisation.",
                layers=weak,
                norms=norms,
            )
        if reason := exploding(total, self.history, self.max_norm, self.growth):
            self._warn(
                "exploding_gradients",
                step,
                f"exploding gradients at step {step}: {reason}. Remedies: gradient clipping "
                "(trainer.gradient_clip_val=1.0), a lower learning rate, normalisation layers.",
                total_norm=total,
            )
        if math.isfinite(total):
            self.history.append(total)

    def diagnostics(self) -> dict[str, Any]:
        return {"gradient_health": {"events": self.events, "measurements": len(self.history)}}
