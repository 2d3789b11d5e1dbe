"""``<run>/csv/metrics.csv``: the learning curves, kept whole through kills and resumes."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from argparse import Namespace
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from trainlab.trust.files import write_atomic
from trainlab.trust.loading import load_checkpoint
from trainlab.trust.secrets import redact_config


class CSVLogger(Logger):
    """Lightning's CSV layout (``<save_dir>/<name>/<version>/metrics.csv`` and ``hparams.yaml``),
    written so that no row on disk is ever lost.

    Lightning's ``CSVLogger`` deletes ``metrics.csv`` when it opens it and rewrites the file when
    a new column appears: a resumed run held the earlier rows in memory only, and a kill lost
    them. Here each :meth:`save` appends the new rows and syncs them to disk, a new column
    rewrites the file through a temporary one, and a run resumed from a checkpoint keeps the rows
    logged before that checkpoint's step (those after it are logged again by the resumed run).

    Args:
        save_dir: the run directory.
        name: the folder under it.
        version: a folder under that ("" for none).
        resume_from: the checkpoint this run resumes from (``ckpt_path``), or None for a fresh
            file.
    """

    def __init__(
        self,
        save_dir: str,
        name: str = "csv",
        version: str = "",
        resume_from: str | None = None,
    ) -> None:
        super().__init__()
        self._save_dir, self._name, self._version = save_dir, name, version
        self._resume_from = resume_from
        self._pending: list[dict[str, Any]] = []
        self._keys: list[str] = []
        self._opened = False
        self._hparams: dict[str, Any] = {}

    @property
    @override
    def name(self) -> str:
        return self._name

    @property
    @override
    def version(self) -> str:
        return self._version

    @property
    @override
    def save_dir(self) -> str:
        return self._save_dir

    @property
    @override
    def log_dir(self) -> str:
        return str(Path(self._save_dir, self._name, self._version))

    @property
    def metrics_file(self) -> Path:
        return Path(self.log_dir) / "metrics.csv"

    def _open(self) -> None:
        """Start the file: keep the rows before the resumed checkpoint's step, else none."""
        self._opened = True
        path = self.metrics_file
        if not path.is_file():
            return
        if not self._resume_from:
            path.unlink()  # a fresh run (the run directory guard kept any result from here)
            return
        step = int(load_checkpoint(self._resume_from, mmap=True)["global_step"])
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            self._keys = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step") and int(float(r["step"])) < step]
        write_atomic(path, _table(self._keys, rows))

    @override
    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        import yaml

        values = vars(params) if isinstance(params, Namespace) else dict(params)
        text = yaml.safe_dump(redact_config(values), sort_keys=False)
        write_atomic(Path(self.log_dir) / "hparams.yaml", text)

    @override
    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if not self._opened:
            self._open()
        row = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}
        row["step"] = step if step is not None else len(self._pending)
        self._pending.append(row)

    @override
    @rank_zero_only
    def save(self) -> None:
        """Append the rows logged since the last save, synced to disk; a new column rewrites
        the file whole (old rows included) through a temporary file."""
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        path = self.metrics_file
        new = sorted({k for r in rows for k in r} - set(self._keys))
        if new or not path.is_file():
            self._keys = sorted({*self._keys, *new})
            old: list[dict[str, Any]] = []
            if path.is_file():
                with path.open(newline="") as handle:
                    old = list(csv.DictReader(handle))
            write_atomic(path, _table(self._keys, [*old, *rows]))
            return
        text = io.StringIO()
        csv.DictWriter(text, fieldnames=self._keys).writerows(rows)
        data = text.getvalue().encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            end = os.fstat(fd).st_size
            try:
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            except OSError:  # a full disk: no half row is left for a resumed run to read
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end)
                raise
        finally:
            os.close(fd)

    @override
    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()


def _plain(value: Any) -> Any:
    """Hyperparameters as YAML can hold them: configs as dicts, other objects by name."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _table(keys: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
