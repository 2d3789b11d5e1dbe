"""Stop a run whose training loss diverges, keeping the last checkpoint saved before it."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
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

    Every step is tracked on the device (the moving average, its minimum, the first bad step);
    the result is read back only every ``every_n_steps`` steps, so the guard adds no per-step
    host sync.

    Args:
        factor: how far above its minimum the smoothed loss may rise.
        smoothing: weight of the past in the exponential moving average of the loss.
        warmup_steps: steps before the rise test applies (NaN/Inf always stops).
        every_n_steps: read the verdict back every n optimiser steps.
    """

    def __init__(
        self,
        factor: float = 10.0,
        smoothing: float = 0.9,
        warmup_steps: int = 20,
        every_n_steps: int = 10,
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
        self._ema: torch.Tensor | None = None  # smoothed loss
        self._min: torch.Tensor | None = None  # its running minimum
        self._first_bad: torch.Tensor | None = None  # (step, loss, smoothed, min); step -1: none
        self._restored: tuple[float | None, float | None] = (None, None)
        self.stop_reason: str | None = None
        self.event: dict[str, Any] = {}

    def _track(self, loss: torch.Tensor, step: int) -> None:
        """Update the device-side state with this step's loss; no read-back."""
        finite = torch.isfinite(loss)
        if self._ema is None or self._min is None or self._first_bad is None:
            ema0, min0 = self._restored
            self._ema = (
                torch.where(finite, loss, 0.0) if ema0 is None else torch.full_like(loss, ema0)
            )
            self._min = torch.full_like(loss, math.inf if min0 is None else min0)
            self._first_bad = torch.full((4,), -1.0, device=loss.device)
        else:
            s = self.smoothing
            self._ema = torch.where(finite, s * self._ema + (1 - s) * loss, self._ema)
        bad = ~finite
        if step >= self.warmup_steps:
            bad = bad | (self._ema > self.factor * self._min)
        record = torch.stack([torch.full_like(loss, step), loss, self._ema, self._min])
        self._first_bad = torch.where(bad & (self._first_bad[0] < 0), record, self._first_bad)
        self._min = torch.minimum(self._min, self._ema)

    @override
    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss_t = outputs["loss"] if isinstance(outputs, dict) else outputs
        if self.stop_reason or loss_t is None:
            return
        step = trainer.global_step
        self._track(loss_t.detach().float(), step)
        if step % self.every_n_steps:
            return
        assert self._first_bad is not None
        bad_step, loss, smoothed, minimum = self._first_bad.tolist()  # the one read-back
        if not trainer.strategy.reduce_boolean_decision(bad_step >= 0, all=False):
            return
        if bad_step >= 0:
            armed = bad_step >= self.warmup_steps
            reason = divergence(loss, minimum if armed else None, smoothed, self.factor)
            step = int(bad_step)
        else:
            reason = "another rank diverged"
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        kept = self._keep_last_good(trainer)
        self.stop_reason = (
            f"diverged at step {step} (epoch {trainer.current_epoch}): {reason}; "
            f"loss {loss:.4g}, learning rate {lr:.3g}. "
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
        def value(t: torch.Tensor | None) -> float | None:
            return None if t is None else float(t)

        return {"smoothed": value(self._ema), "min": value(self._min)}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = (state_dict["smoothed"], state_dict["min"])
        self._ema = self._min = self._first_bad = None

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
