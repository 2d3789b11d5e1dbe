"""Baselines in every run, as a callback: scored after the test, judged against the network."""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.trainer.states import TrainerFn
from typing_extensions import override

from trainlab.errors import ConfigError
from trainlab.experiments.baselines import Baselines, fit_baselines, judge

log = logging.getLogger(__name__)


class ScoreBaselines(pl.Callback):
    """Fits the trivial and the linear baseline (:func:`~trainlab.experiments.baselines.
    fit_baselines`) on the run's own splits once the network has been tested, and says whether
    the network beats them on its monitored validation metric.

    Their numbers go to every logger and, through :meth:`report_metrics`, into ``metrics.json``
    as ``baseline/<name>/<split>/<metric>``; the verdict and notes go there as ``baselines``
    (:meth:`report_summary`). Rank 0 alone fits them.

    Args:
        enabled: False leaves the run without baselines (the config's ``baselines=false``).
        max_samples: at most this many samples of each split are read (``baseline_samples``).
        seed: seeds the linear fit (the run's seed).
    """

    def __init__(self, enabled: bool = True, max_samples: int = 5000, seed: int | None = 0) -> None:
        if not isinstance(enabled, bool):
            raise ConfigError(f"baselines must be true or false, got {enabled!r}")
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples <= 0:
            raise ConfigError(f"baseline_samples must be a positive integer, got {max_samples!r}")
        self.enabled = enabled
        self.max_samples = max_samples
        self.seed = seed or 0
        self.found: Baselines | None = None
        self._validated: dict[str, float] = {}

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # the checkpoint that is tested next
            self._validated = {k: float(v) for k, v in trainer.callback_metrics.items()}

    @override
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (self.enabled and trainer.is_global_zero):
            return
        dm: Any = getattr(trainer, "datamodule", None)
        found = fit_baselines(pl_module, dm, self.max_samples, self.seed)
        if monitor := pl_module.hparams.get("monitor"):
            judge(self._validated, found, monitor, pl_module.hparams.get("mode", "min"))
        for note in found.notes:
            log.info("baselines: %s", note)
        if found.verdict:
            log.log(logging.INFO if found.beaten else logging.WARNING, "%s", found.verdict)
        for logger in trainer.loggers if found.metrics else []:
            logger.log_metrics(found.metrics, step=trainer.global_step)
            logger.save()
        self.found = found

    def report_metrics(self) -> dict[str, float]:
        return dict(self.found.metrics) if self.found else {}

    def report_summary(self) -> dict[str, Any]:
        return {"baselines": self.found.as_dict()} if self.found else {}
