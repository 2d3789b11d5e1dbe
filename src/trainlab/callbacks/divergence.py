"""Stop a run whose training loss diverges, keeping the last checkpoint saved before it."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from typing_extensions import override

from trainlab.errors import ConfigError

log = logging.getLogger(__name__)
GOOD_NAME = "last-good.ckpt"


def divergence(
    loss: float, smoothed_min: float | None, smoothed: float, factor: float
) -> str | None:
    """Why the loss counts as diverged, or None: not finite, or the smoothed loss above
    ``factor`` times its running minimum."""
    if not math.isfinite(loss):
        return f"the training loss is {loss}"
    if smoothed_min is not None and smoothed > factor * smoothed_min:
        return (
            f"the smoothed training loss {smoothed:.4g} rose above {factor:g}x its minimum "
            f"{smoothed_min:.4g}"
        )
    return None


class DivergenceGuard(pl.Callback):
    """Stops training when the loss becomes NaN/Inf or its moving average rises above
    ``factor`` times its running minimum.

    The stop names the step, the loss and the learning rate; the last checkpoint saved before
    the divergence is copied to ``checkpoints/last-good.ckpt`` (later saves cannot overwrite
    it); ``metrics.json`` records the reason. The run then ends normally (exit code 0), so a
    sweep goes on. All ranks stop at the same step.

    Args:
        factor: how far above its minimum the smoothed loss may rise.
        smoothing: weight of the past in the exponential moving average of the loss.
        warmup_steps: steps before the rise test applies (NaN/Inf always stops).
        every_n_steps: check every n optimiser steps; each check reads the loss back once.
    """

    def __init__(
        self,
        factor: float = 10.0,
        smoothing: float = 0.9,
        warmup_steps: int = 20,
        every_n_steps: int = 1,
    ) -> None:
        if factor <= 1:
            raise ConfigError(f"callbacks.divergence_guard.factor must be > 1, got {factor}")
        if not 0 <= smoothing < 1:
            raise ConfigError(
                f"callbacks.divergence_guard.smoothing must be in [0, 1), got {smoothing}"
            )
        if every_n_steps < 1:
            raise ConfigError(
                f"callbacks.divergence_guard.every_n_steps must be >= 1, got {every_n_steps}"
            )
        self.factor, self.smoothing = factor, smoothing
        self.warmup_steps, self.every_n_steps = warmup_steps, every_n_steps
        self._smoothed: float | None = None
        self._min: float | None = None
        self.stop_reason: str | None = None
        self.event: dict[str, Any] = {}

    @override
    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step = trainer.global_step
        if self.stop_reason or step % self.every_n_steps:
            return
        loss_t = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss_t is None:
            return
        loss = float(loss_t)
        if math.isfinite(loss):
            s = self.smoothing
            self._smoothed = loss if self._smoothed is None else s * self._smoothed + (1 - s) * loss
        armed = step >= self.warmup_steps  # the rise test waits; NaN/Inf never does
        reason = divergence(loss, self._min if armed else None, self._smoothed or loss, self.factor)
        if self._smoothed is not None:  # the minimum counts from the first step on
            self._min = self._smoothed if self._min is None else min(self._min, self._smoothed)
        if not trainer.strategy.reduce_boolean_decision(reason is not None, all=False):
            return
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        kept = self._keep_last_good(trainer)
        self.stop_reason = (
            f"diverged at step {step} (epoch {trainer.current_epoch}): "
            f"{reason or 'another rank diverged'}; loss {loss:.4g}, learning rate {lr:.3g}. "
            + (f"Last good checkpoint: {kept}. " if kept else "No checkpoint was saved before it. ")
            + "Try a lower learning rate (model.optimizer.lr) or gradient clipping "
            "(trainer.gradient_clip_val=1.0)."
        )
        self.event = {
            "kind": "divergence",
            "step": step,
            "epoch": trainer.current_epoch,
            "loss": loss,
            "lr": lr,
            "last_good_checkpoint": kept,
        }
        log.warning(self.stop_reason)
        trainer.should_stop = True

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"smoothed": self._smoothed, "min": self._min}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._smoothed, self._min = state_dict["smoothed"], state_dict["min"]

    @staticmethod
    def _keep_last_good(trainer: pl.Trainer) -> str | None:
        callback = trainer.checkpoint_callback
        source = getattr(callback, "last_model_path", "") or getattr(
            callback, "best_model_path", ""
        )
        if not source or not Path(source).is_file():
            return None
        target = Path(source).with_name(GOOD_NAME)
        if trainer.is_global_zero:
            shutil.copy2(source, target)
        return str(target)

    def diagnostics(self) -> dict[str, Any]:
        return {"divergence": self.event or None}
