"""Experiment-tracker loggers that need more than their Lightning class."""

from trainlab.loggers.wandb import has_wandb_api_key, wandb_logger

__all__ = ["has_wandb_api_key", "wandb_logger"]
