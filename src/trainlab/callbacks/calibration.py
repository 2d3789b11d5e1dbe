"""Measure calibration at the end of a run, fit a post-hoc calibrator, report and save it."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import override

from trainlab.calibration.metrics import calibration_report, check_n_bins, headline_metrics
from trainlab.calibration.plots import save_reliability_diagram
from trainlab.calibration.scalers import CHECKPOINT_KEY, METHODS, calibrator_state, make_calibrator
from trainlab.errors import ConfigError
from trainlab.loggers.images import log_image
from trainlab.loggers.scalars import log_scalars
from trainlab.models.outputs import gather, split_loader

log = logging.getLogger(__name__)


def split_logits(
    model: pl.LightningModule, datamodule: Any, split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, K)`` and labels ``(N,)`` of a whole split, read through its dataloader."""
    logits, labels = gather(model, split_loader(datamodule, split))
    if labels is None:
        raise ConfigError(f"calibration: the {split} batches of the data hold no labels")
    return logits, labels


class Calibration(pl.Callback):
    """After testing, fit a calibrator on the validation logits and report the test split's
    calibration before and after.

    Writes ``calibration.json`` and ``reliability.png`` into ``dirpath``, logs the numbers and
    the diagram to every logger, adds the headline numbers to ``metrics.json`` and stores the
    calibrator in the tested checkpoint (for ``eval`` and ``predict``).

    Every rank computes on the whole validation and test splits, read through the DataModule's
    dataloaders, so DDP gives the numbers one process would. A regression run skips it, saying so
    in one line.

    Args:
        method: ``temperature`` (default), ``vector``, ``platt`` (binary tasks) or ``auto``
            (Platt for two classes, else temperature).
        n_bins: equal-width confidence bins for ECE, MCE and the diagram.
        dirpath: where the report goes; default the trainer's ``default_root_dir``.

    Raises:
        ConfigError: an unknown method or ``n_bins < 1``.
    """

    def __init__(
        self, method: str = "temperature", n_bins: int = 15, dirpath: str | None = None
    ) -> None:
        if method not in (*METHODS, "auto"):
            raise ConfigError(
                f"callbacks.calibration.method {method!r} is unknown; "
                f"use one of {[*METHODS, 'auto']}"
            )
        try:
            self.n_bins = check_n_bins(n_bins)
        except ConfigError as err:
            raise ConfigError(f"callbacks.calibration.{err}") from err
        self.method = method
        self.dirpath = dirpath
        self.results: dict[str, Any] = {}
        self.skipped: str | None = None

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        dm: Any = getattr(trainer, "datamodule", None)
        task = getattr(dm, "task", None)
        if task != "classification":
            if self.skipped is None:
                self.skipped = (
                    f"calibration skipped: it measures class probabilities; this is a {task} run"
                )
                log.info(self.skipped)
            return
        if self.method == "platt" and dm.num_outputs != 2:
            make_calibrator("platt", dm.num_outputs)  # raises with the reason

    @override
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.skipped:
            return
        dm = getattr(trainer, "datamodule", None)
        val_logits, val_labels = split_logits(pl_module, dm, "val")
        test_logits, test_labels = split_logits(pl_module, dm, "test")
        with torch.inference_mode(False):  # Lightning tests under inference mode
            calibrator = make_calibrator(self.method, val_logits.shape[1])
            calibrator.fit(val_logits, val_labels)
            with torch.no_grad():
                calibrated = calibrator(test_logits.clone())
        before = calibration_report(test_logits, test_labels, self.n_bins)
        after = calibration_report(calibrated, test_labels, self.n_bins)
        self.results = {
            "method": calibrator.method,
            "fit_on": "val",
            "evaluated_on": "test",
            "n_bins": self.n_bins,
            "parameters": calibrator.parameters_dict(),
            "before": before,
            "after": after,
            "checkpoint": trainer.ckpt_path,
        }
        if not trainer.is_global_zero:
            return
        out = Path(self.dirpath or trainer.default_root_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "calibration.json").write_text(json.dumps(self.results, indent=2))
        figure = save_reliability_diagram(
            {"uncalibrated": before, f"{calibrator.method} scaling": after},
            out / "reliability.png",
            title="test split",
        )
        log_scalars(trainer, self.report_metrics())
        log_image(trainer.loggers, "calibration/reliability", figure, step=trainer.global_step)
        if trainer.ckpt_path and Path(trainer.ckpt_path).is_file():
            self._save_into(Path(trainer.ckpt_path), calibrator_state(calibrator))

    def diagnostics(self) -> dict[str, Any]:
        return {"calibration_skipped": self.skipped} if self.skipped else {}

    def report_metrics(self) -> dict[str, float]:
        """Headline numbers for ``metrics.json``: test calibration before and after."""
        if not self.results:
            return {}
        return headline_metrics(self.results["before"], self.results["after"], "test")

    @staticmethod
    def _save_into(path: Path, state: dict[str, Any]) -> None:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        checkpoint[CHECKPOINT_KEY] = state
        tmp = path.with_name(path.name + ".tmp")
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)  # atomic: the checkpoint is never half-written
