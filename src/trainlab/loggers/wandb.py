"""Weights & Biases, offline unless an API key is configured."""

from __future__ import annotations

import netrc
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from trainlab.trust.files import write_atomic


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


ID_FILE = "wandb_id"  # the run directory's W&B run id: a resumed run logs to the same W&B run


def run_id(save_dir: str | Path, resume_from: str | Path | None) -> tuple[str, bool]:
    """The W&B run id for a run writing to ``save_dir``: the id of the run whose checkpoint it
    resumes from (its run directory's ``wandb_id``), else a new one; and whether it resumes."""
    if resume_from:
        previous = Path(resume_from).resolve().parent.parent / ID_FILE  # <run>/checkpoints/x.ckpt
        if previous.is_file() and (found := previous.read_text().strip()):
            return found, True
    return secrets.token_hex(4), False  # W&B ids are short lowercase strings


def wandb_logger(
    offline: bool | None = None,
    save_dir: str = ".",
    resume_from: str | None = None,
    **kwargs: Any,
) -> WandbLogger:
    """A ``WandbLogger`` that logs offline when no API key is configured.

    Args:
        offline: force offline (True) or online (False); None decides from the API key
            (``WANDB_MODE=offline`` in the environment also forces offline).
        save_dir: where the ``wandb/`` run folder goes (the run directory by default config);
            the run's W&B id is written there as ``wandb_id``.
        resume_from: the checkpoint this run resumes from (``ckpt_path``): its run's W&B id is
            reused, so one job is one W&B run across resumes.
        **kwargs: passed to ``WandbLogger`` (project, name, tags, group, log_model, ...).
    """
    if offline is None:
        offline = os.environ.get("WANDB_MODE") in ("offline", "disabled") or not has_wandb_api_key()
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    if "id" not in kwargs:
        kwargs["id"], resumed = run_id(save_dir, resume_from)
        if resumed:
            kwargs.setdefault("resume", "allow")
    if getattr(rank_zero_only, "rank", 0) == 0:  # the other ranks draw ids W&B never sees
        write_atomic(Path(save_dir) / ID_FILE, str(kwargs["id"]))
    return WandbLogger(offline=offline, save_dir=save_dir, **kwargs)


def mark_runs(loggers: Any, status: str, reason: str, failed: bool = False) -> None:
    """Tag each W&B run of ``loggers`` with ``status`` (``diverged``, ``failed``) and put the
    reason in its summary; a failed run is finished with exit code 1, so W&B shows it failed."""
    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        run = logger.experiment
        run.tags = (*(run.tags or ()), status)
        run.summary["stop_reason"] = reason
        if failed:
            run.finish(exit_code=1)
