"""Pruning inside the job: a Lightning callback that feeds the trial the monitored metric after
every validation and stops the run when the study's pruner says so.

The job is a trial of trainlab's Optuna sweeper when ``hydra.job.env_set`` gave it
:data:`~trainlab.sweeps.optuna.TRIAL_ENV` and its ``hydra.sweeper`` has a pruner; it then opens
the study from that config (storage, study name, pruner), wherever it runs: in the sweep's
process, a joblib worker or a SLURM job. A pruned run ends like an early-stopped one: its best
checkpoint is tested, its curves and ``metrics.json`` are kept, and ``stop_reason`` starts with
``pruned``, which the sweeper tells the study.
"""

from __future__ import annotations

import math
import os
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig

from trainlab.errors import ConfigError
from trainlab.sweeps.optuna import TRIAL_ENV, check_pruning, open_storage, trial_id


class OptunaPruning(pl.Callback):
    """Report ``monitor`` to trial ``number`` of the study after each validation (the epoch is
    the step); stop training when the pruner prunes the trial. Rank 0 asks, every rank stops."""

    def __init__(self, monitor: str, storage: str, study_name: str, pruner: Any, number: int):
        self.monitor = monitor
        self.storage = storage
        self.study_name = study_name
        self.pruner = pruner
        self.number = number
        self.stop_reason: str | None = None
        self._trial: Any = None

    def trial(self) -> Any:
        """The study's trial, opened once (on rank 0 only)."""
        if self._trial is None:
            import optuna

            storage = open_storage(self.storage)
            study = optuna.load_study(
                study_name=self.study_name,
                storage=storage,
                sampler=optuna.samplers.RandomSampler(),  # the job suggests nothing
                pruner=self.pruner,
            )
            self._trial = optuna.trial.Trial(study, trial_id(storage, self.study_name, self.number))
        return self._trial

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.stop_reason or trainer.state.fn != TrainerFn.FITTING:
            return  # the validation after fit (of the best checkpoint) is no step
        epoch = trainer.current_epoch
        value = trainer.callback_metrics.get(self.monitor)
        prune = False
        if trainer.is_global_zero and value is not None:
            trial = self.trial()
            trial.report(float(value), step=epoch)  # a step reported before a resume: kept
            prune = bool(trial.should_prune())
        if trainer.strategy.broadcast(prune, src=0):
            self.stop_reason = (
                f"pruned at epoch {epoch} by {type(self.pruner).__name__}: "
                f"{self.monitor} {float(value) if value is not None else math.nan:.4g}"
            )
            trainer.should_stop = True


def trial_pruning(cfg: DictConfig) -> OptunaPruning | None:
    """The pruning callback when this job is a trial of a study with a pruner, else None.

    Raises:
        ConfigError: the optimised metric is no validation metric (the pruner compares trials
            on it every epoch).
    """
    number = os.environ.get(TRIAL_ENV)
    if number is None:
        return None
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    if not HydraConfig.initialized():
        return None
    sweeper = HydraConfig.get().sweeper
    if not sweeper.get("pruner") or not sweeper.get("storage"):
        return None
    metric = str(cfg.get("optimized_metric"))
    try:
        check_pruning(metric, sweeper.pruner)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    return OptunaPruning(
        metric,
        str(sweeper.storage),
        str(sweeper.study_name or "trainlab"),
        instantiate(sweeper.pruner),
        int(number),
    )
