"""Weights & Biases, offline unless an API key is configured."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger


def has_wandb_api_key() -> bool:
    """True when ``WANDB_API_KEY`` is set or ``~/.netrc`` holds a login for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return host is not None and netrc.netrc(path).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, PermissionError):
        return False


def wandb_logger(offline: bool | None = None, save_dir: str = ".", **kwargs: Any) -> WandbLogger:
    """A ``WandbLogger`` that logs offline when no API key is configured.

    Args:
        offline: force offline (True) or online (False); None decides from the API key
            (``WANDB_MODE=offline`` in the environment also forces offline).
        save_dir: where the ``wandb/`` run folder goes (the run directory by default config).
        **kwargs: passed to ``WandbLogger`` (project, name, tags, group, log_model, ...).
    """
    if offline is None:
        offline = os.environ.get("WANDB_MODE") in ("offline", "disabled") or not has_wandb_api_key()
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(offline=offline, save_dir=save_dir, **kwargs)
