"""Experiment-tracker loggers that need more than their Lightning class.

W&B's helpers are imported when first named (``trainlab.loggers.wandb_logger`` in a config),
so a fork without ``loggers/wandb.py`` logs with the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainlab.loggers.wandb import has_wandb_api_key, wandb_logger

__all__ = ["has_wandb_api_key", "wandb_logger"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from trainlab.loggers import wandb

    return getattr(wandb, name)
