"""Measure calibration at the end of a run, fit a post-hoc calibrator, report and save it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import override

from trainlab.calibration.conformal import (
    CONFORMAL_KEY,
    ConformalSets,
    check_alpha,
    coverage_and_size,
)
from trainlab.calibration.conformal import METHODS as CONFORMAL_METHODS
from trainlab.calibration.metrics import calibration_report, check_n_bins, headline_metrics
from trainlab.calibration.plots import draw_calibration
from trainlab.calibration.scalers import CHECKPOINT_KEY, METHODS, calibrator_state, make_calibrator
from trainlab.calibration.selective import CHECKPOINT_KEY as SELECTIVE_KEY
from trainlab.calibration.selective import risk_coverage, validation_state
from trainlab.errors import ConfigError
from trainlab.loggers.images import log_image
from trainlab.loggers.scalars import log_scalars
from trainlab.models.outputs import split_logits
from trainlab.trust.files import save_torch, write_atomic
from trainlab.trust.loading import load_checkpoint
from trainlab.trust.run_dir import CALIBRATION

log = logging.getLogger(__name__)


class Calibration(pl.Callback):
    """After testing, fit a calibrator on the validation logits and report the test split's
    calibration before and after.

    Writes ``calibration.json``, ``reliability.png`` and ``risk_coverage.png`` into
    ``dirpath``, logs the numbers and the diagram to every logger, adds the headline numbers to
    ``metrics.json`` and stores the calibrator in the tested checkpoint (for ``eval`` and
    ``predict``).

    Every rank computes on the whole validation and test splits, read through the DataModule's
    dataloaders, so DDP gives the numbers one process would. A regression run skips it, saying so
    in one line.

    Args:
        method: ``temperature`` (default), ``vector``, ``platt`` (binary tasks) or ``auto``
            (Platt for two classes, else temperature).
        n_bins: equal-width confidence bins for ECE, MCE and the diagram.
        dirpath: where the report goes; default the trainer's ``default_root_dir``.
        conformal_alpha: also fit split-conformal prediction sets on the calibrated validation
            probabilities, holding the true class with probability ``1 - alpha``; the test
            split's coverage and mean set size are reported. None: no sets.
        conformal_method: ``aps`` (adaptive sets) or ``lac`` (smallest sets); see
            :mod:`trainlab.calibration.conformal`.
        figures: also draw ``reliability.png`` and ``risk_coverage.png`` (the config's
            ``figures``); without them, ``python -m trainlab.figures`` draws them later from
            ``calibration.json``.

    Raises:
        ConfigError: an unknown method, ``n_bins < 1`` or an alpha outside (0, 1).
    """

    def __init__(
        self,
        method: str = "temperature",
        n_bins: int = 15,
        dirpath: str | None = None,
        conformal_alpha: float | None = 0.1,
        conformal_method: str = "aps",
        figures: bool = True,
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
        if conformal_alpha is not None:
            check_alpha(conformal_alpha, "callbacks.calibration.conformal_alpha")
        if conformal_method not in CONFORMAL_METHODS:
            raise ConfigError(
                f"callbacks.calibration.conformal_method {conformal_method!r} is unknown; "
                f"use one of {CONFORMAL_METHODS}"
            )
        self.conformal_alpha, self.conformal_method = conformal_alpha, conformal_method
        self.method = method
        self.dirpath = dirpath
        if not isinstance(figures, bool):
            raise ConfigError(
                f"callbacks.calibration.figures must be true or false, got {figures!r}"
            )
        self.figures = figures
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
                calibrated_val = calibrator(val_logits.clone())
        sets = None
        if self.conformal_alpha is not None:
            sets = ConformalSets.fit(
                calibrated_val.softmax(1), val_labels, self.conformal_alpha, self.conformal_method
            )
            test_sets = sets.predict(calibrated.softmax(1))
        before = calibration_report(test_logits, test_labels, self.n_bins)
        after = calibration_report(calibrated, test_labels, self.n_bins)
        selective = risk_coverage(calibrated.softmax(1), test_labels)
        self.results = {
            "method": calibrator.method,
            "fit_on": "val",
            "evaluated_on": "test",
            "n_bins": self.n_bins,
            "parameters": calibrator.parameters_dict(),
            "before": before,
            "after": after,
            "checkpoint": trainer.ckpt_path,
            "selective": {**selective, "of": "calibrated probabilities", "evaluated_on": "test"},
        }
        if sets is not None:
            self.results["conformal"] = {
                **sets.state(),
                "fit_on": "val (calibrated probabilities)",
                "evaluated_on": "test",
                **coverage_and_size(test_sets, test_labels),
            }
        if not trainer.is_global_zero:
            return
        out = Path(self.dirpath or trainer.default_root_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / CALIBRATION, json.dumps(self.results, indent=2))
        log_scalars(trainer, self.report_metrics())
        if self.figures:
            figure, _ = draw_calibration(self.results, out)
            log_image(trainer.loggers, "calibration/reliability", figure, step=trainer.global_step)
        if trainer.ckpt_path and Path(trainer.ckpt_path).is_file():
            saved = {
                CHECKPOINT_KEY: calibrator_state(calibrator),
                SELECTIVE_KEY: validation_state(calibrated_val.softmax(1), val_labels),
            }
            if sets is not None:
                saved[CONFORMAL_KEY] = sets.state()
            self._save_into(Path(trainer.ckpt_path), saved)

    def diagnostics(self) -> dict[str, Any]:
        return {"calibration_skipped": self.skipped} if self.skipped else {}

    def report_metrics(self) -> dict[str, float]:
        """Headline numbers for ``metrics.json``: test calibration before and after."""
        if not self.results:
            return {}
        found = headline_metrics(self.results["before"], self.results["after"], "test")
        found["test/aurc"] = self.results["selective"]["aurc"]
        if conformal := self.results.get("conformal"):
            found["test/conformal_coverage"] = conformal["coverage"]
            found["test/conformal_set_size"] = conformal["set_size"]
        return found

    @staticmethod
    def _save_into(path: Path, saved: dict[str, Any]) -> None:
        checkpoint = load_checkpoint(path)
        checkpoint.update(saved)
        save_torch(checkpoint, path)  # the checkpoint is never half-written
