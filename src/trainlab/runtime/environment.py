"""What a run ran on: ``env.json`` in every run directory (and ``git.diff`` when the code had
uncommitted changes), so that a result can be traced to its code and machine."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from trainlab.trust.files import write_atomic
from trainlab.trust.secrets import redact

PACKAGES = (
    "trainlab",
    "torch",
    "lightning",
    "torchmetrics",
    "hydra-core",
    "omegaconf",
    "numpy",
    "scikit-learn",
    "wandb",
)
SLURM = (
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_PROCID",
    "SLURM_NODELIST",
    "SLURM_RESTART_COUNT",  # a requeued job: how many times it started before
)
DIFF_FILE = "git.diff"


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state(root: Path, out_dir: Path) -> dict[str, Any] | None:
    """The commit of ``root``'s repository and whether tracked files differ from it (the diff
    goes to ``out_dir/git.diff``); None outside a git repository."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return None
    diff = _git(root, "diff", "HEAD") or ""
    if diff:  # what the user edited into tracked files may hold a secret: masked
        write_atomic(out_dir / DIFF_FILE, redact(diff))
    return {"commit": commit.strip(), "dirty": bool(diff), "diff": DIFF_FILE if diff else None}


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def describe(root: Path, out_dir: Path) -> dict[str, Any]:
    """Everything ``env.json`` holds; writes ``git.diff`` beside it when the tree is dirty."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "command": [redact(arg) for arg in sys.argv],
        "git": git_state(root, out_dir),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count(),
        # torch's reductions run in another order with another thread count: a job run side by
        # side (joblib's workers get one thread each) need not repeat the same job run alone
        "threads": {
            "intra_op": torch.get_num_threads(),
            "inter_op": torch.get_num_interop_threads(),
        },
        "cuda": {
            "available": cuda,
            "version": torch.version.cuda,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if cuda
            else [],
        },
        "slurm": {k: os.environ[k] for k in SLURM if k in os.environ} or None,
    }
