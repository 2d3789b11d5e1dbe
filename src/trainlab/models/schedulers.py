"""Learning-rate schedules, as factories that return Lightning's scheduler dicts.

Each factory is configured as a Hydra partial and called by the model with the optimiser and
what only the running trainer knows (total steps) or the model decides (monitored metric).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from trainlab.errors import ConfigError


def cosine_with_warmup(
    optimizer: Optimizer,
    *,
    total_steps: int,
    monitor: str,
    mode: str,
    warmup_fraction: float = 0.05,
    min_lr_ratio: float = 0.0,
) -> dict[str, Any]:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to
    ``min_lr_ratio`` times the base rate; stepped every optimiser step.

    ``monitor`` and ``mode`` are accepted for a uniform call and unused.
    """
    if not 0.0 <= warmup_fraction < 1.0:
        raise ConfigError(
            f"model.scheduler.warmup_fraction must be in [0, 1), got {warmup_fraction}"
        )
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ConfigError(f"model.scheduler.min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    total = max(1, int(total_steps))
    warmup = int(warmup_fraction * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return {"scheduler": LambdaLR(optimizer, factor), "interval": "step", "frequency": 1}


def reduce_on_plateau(
    optimizer: Optimizer,
    *,
    total_steps: int,
    monitor: str,
    mode: Literal["min", "max"],
    factor: float = 0.5,
    patience: int = 3,
    min_lr: float = 0.0,
) -> dict[str, Any]:
    """Multiply the rate by ``factor`` when ``monitor`` has not improved for ``patience`` epochs.

    ``total_steps`` is accepted for a uniform call and unused.
    """
    if not 0.0 < factor < 1.0:
        raise ConfigError(f"model.scheduler.factor must be in (0, 1), got {factor}")
    scheduler = ReduceLROnPlateau(
        optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr
    )
    return {"scheduler": scheduler, "monitor": monitor, "interval": "epoch", "frequency": 1}


def constant(optimizer: Optimizer, *, total_steps: int, monitor: str, mode: str) -> dict[str, Any]:
    """Keep the learning rate fixed (a schedule of its own so every run has the same shape)."""
    return {
        "scheduler": LambdaLR(optimizer, lambda epoch: 1.0),
        "interval": "epoch",
        "frequency": 1,
    }
