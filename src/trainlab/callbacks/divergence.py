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
    loss: float,
    smoothed_min: float | None,
    smoothed: float,
    factor: float,
    start: float | None = None,
) -> str | None:
    """Why the loss counts as diverged, or None: not finite, or the smoothed loss above
    ``factor`` times its running minimum and above ``start``, the loss training started at.

    The second bound keeps a spike of a loss that had fallen near zero (0.0005 to 0.006) from
    counting: a diverging run climbs above where it started.
    """
    if not math.isfinite(loss):
        return f"the training loss is {loss}"
    above_start = start is None or smoothed > start
    if smoothed_min is not None and smoothed > factor * smoothed_min and above_start:
        return (
            f"the smoothed training loss {smoothed:.4g} rose above {factor:g}x its minimum "
            f"{smoothed_min:.4g}" + (f" and above its first value {start:.4g}" if start else "")
        )
    return None


class DivergenceGuard(pl.Callback):
    """Stops training when the loss becomes NaN/Inf, or its moving average rises above
    ``factor`` times its running minimum and above the loss training started at.

    The stop names the step, the loss and the learning rate; the last checkpoint saved before
    the divergence is copied to ``checkpoints/last-good.ckpt`` (later saves cannot overwrite
    it); ``metrics.json`` records the reason. The run then ends normally (exit code 0), so a
    sweep goes on. All ranks stop at the same step.

    The losses stay on the device until every ``every_n_steps`` optimiser steps (and at each
    epoch's end), when they are read back at once and checked step by step, so the guard adds no
    per-step host sync.

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
        self._ema: float | None = None  # smoothed loss
        self._min = math.inf  # its running minimum
        self._start: float | None = None  # the first finite loss
        self._pending: list[tuple[int, torch.Tensor]] = []  # (step of the last loss, losses)
        self._checked = 0  # the step of the last read-back
        self.stop_reason: str | None = None
        self.event: dict[str, Any] = {}

    def _first_bad(self) -> tuple[int, float, float, float] | None:
        """Read the pending losses back and run the moving average over them; the first bad
        ``(step, loss, smoothed, smoothed minimum before it)``, or None."""
        if not self._pending:
            return None
        ends = [(end, len(losses)) for end, losses in self._pending]
        values = torch.cat([losses for _, losses in self._pending]).tolist()  # one read-back
        self._pending.clear()
        steps = [end - n + 1 + i for end, n in ends for i in range(n)]
        for step, loss in zip(steps, values, strict=True):
            finite = math.isfinite(loss)
            if self._ema is None:
                ema = loss if finite else 0.0
                self._start = loss if finite else None
            elif finite:
                ema = self.smoothing * self._ema + (1 - self.smoothing) * loss
            else:
                ema = self._ema
            self._ema = ema
            armed = step >= self.warmup_steps
            start = -math.inf if self._start is None else self._start
            if not finite or (armed and ema > self.factor * self._min and ema > start):
                return step, loss, ema, self._min
            self._min = min(self._min, ema)
        return None

    @override
    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if isinstance(outputs, dict):
            outputs = outputs.get("loss")
        if self.stop_reason or outputs is None:
            return
        step = trainer.global_step
        self._pending.append((step, outputs.detach().float().reshape(-1)))
        if step - self._checked >= self.every_n_steps:
            self._check(trainer)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.stop_reason:
            self._check(trainer)

    def _check(self, trainer: pl.Trainer) -> None:
        self._checked = trainer.global_step
        bad = self._first_bad()
        if not trainer.strategy.reduce_boolean_decision(bad is not None, all=False):
            return
        if bad is not None:
            step, loss, smoothed, minimum = bad
            armed = step >= self.warmup_steps
            reason = divergence(
                loss, minimum if armed else None, smoothed, self.factor, self._start
            )
        else:
            step, loss, reason = trainer.global_step, math.nan, "another rank diverged"
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
        minimum = None if math.isinf(self._min) else self._min
        return {"smoothed": self._ema, "min": minimum, "start": self._start}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._ema = state_dict["smoothed"]
        self._min = math.inf if state_dict["min"] is None else state_dict["min"]
        self._start = state_dict.get("start")
        self._pending.clear()

    @staticmethod
    def _keep_last_good(trainer: pl.Trainer) -> str | None:
        """Copy the newest checkpoint on disk (the latest state, or the best one) to
        ``last-good.ckpt`` beside it."""
        saved = [
            Path(p)
            for callback in trainer.checkpoint_callbacks
            for p in (
                getattr(callback, "last_model_path", ""),
                getattr(callback, "best_model_path", ""),
            )
            if p and Path(p).is_file()
        ]
        if not saved:
            return None
        source = max(saved, key=lambda p: p.stat().st_mtime_ns)
        target = source.with_name(GOOD_NAME)
        if trainer.is_global_zero:
            shutil.copy2(source, target)
        return str(target)

    def diagnostics(self) -> dict[str, Any]:
        return {"divergence": self.event or None}
