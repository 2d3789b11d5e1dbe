"""The training pipeline: config -> data -> net -> model -> Trainer.fit -> best-checkpoint test."""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from omegaconf import DictConfig, OmegaConf, open_dict

from trainlab.callbacks.monitor import MonitorCheck
from trainlab.callbacks.random_state import RandomState
from trainlab.callbacks.ranks import RecordRanks
from trainlab.compat import lightning_says_what_is_missing, warn_if_untested
from trainlab.errors import ConfigError
from trainlab.extras import require_for_loggers
from trainlab.runtime.build import build_data, build_model, instantiate, instantiate_dict
from trainlab.runtime.configs import config_dirs, draw_figures, save_config
from trainlab.runtime.environment import describe
from trainlab.runtime.lr_find import tune_learning_rate
from trainlab.sweeps.pruning import trial_pruning
from trainlab.sweeps.slurm import cluster_environment
from trainlab.trust.checkpoint_io import AtomicCheckpointIO
from trainlab.trust.data import absolute_paths, check_splits
from trainlab.trust.data import check as check_data
from trainlab.trust.data import record as record_data
from trainlab.trust.files import write_atomic
from trainlab.trust.loading import check_checkpoint, load_checkpoint
from trainlab.trust.run_dir import CLASSES, DIAGNOSTICS, RunDir
from trainlab.trust.secrets import redact_config

log = logging.getLogger(__name__)
# Lightning gives its package logger a console handler of its own; records also reach the root
# logger (console and the run's log file under Hydra), so without this each line prints twice.
logging.getLogger("lightning").handlers.clear()


def resume_in_place(cfg: DictConfig, run: RunDir) -> bool:
    """``resume=auto``: continue the run in ``run`` from its ``checkpoints/last.ckpt`` when
    there is one (a requeued SLURM job runs again in its own directory); whether it does.

    Raises:
        ConfigError: the latest checkpoint is unreadable (truncated by a kill mid-write):
            named, and never replaced by a silent restart from scratch.
    """
    latest = run.latest
    if cfg.get("resume") != "auto" or cfg.get("ckpt_path") or not latest.is_file():
        return False
    try:
        check_checkpoint(latest, "resume=auto", resume=True)
    except ConfigError as err:
        previous = run.previous
        try:
            check_checkpoint(previous, "resume=auto", resume=True)
        except ConfigError:
            raise ConfigError(
                f"{err}. Nothing was overwritten; move the file away to start this run "
                "afresh, or resume from another checkpoint with ckpt_path="
            ) from err
        log.warning("%s; resuming from the one before it, %s", err, previous)
        latest = previous
    step = int(load_checkpoint(latest, mmap=True)["global_step"])
    with open_dict(cfg):
        cfg.ckpt_path = str(latest)
    log.info("resume=auto: continuing %s from %s (step %d)", run.path, latest, step)
    return True


def check_top_level(cfg: DictConfig) -> None:
    """Checks on the run-wide keys, before anything is built."""
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"seed must be a non-negative integer or null, got {seed!r}")
    metric = cfg.get("optimized_metric")
    if metric is not None and not str(metric).startswith(("val/", "test/")):
        raise ConfigError(f"optimized_metric must name a val/ or test/ metric, got {metric!r}")
    if ckpt_path := cfg.get("ckpt_path"):
        check_checkpoint(ckpt_path, resume=True)
    if cfg.get("resume") not in (None, "auto"):
        raise ConfigError(f"resume must be auto or null, got {cfg.resume!r}")
    draw_figures(cfg.get("figures", "auto"))  # raises on a value it does not know


TRAINER_INTS = (
    "max_epochs",
    "min_epochs",
    "max_steps",
    "min_steps",
    "check_val_every_n_epoch",
    "accumulate_grad_batches",
    "log_every_n_steps",
    "num_sanity_val_steps",
)
TRAINER_NUMBERS = ("gradient_clip_val",)
# The least value Lightning can use (-1: no limit, or all batches); 0 for the others.
LEAST = {
    "max_epochs": -1,
    "max_steps": -1,
    "num_sanity_val_steps": -1,
    "check_val_every_n_epoch": 1,
    "accumulate_grad_batches": 1,
}


def check_trainer_values(node: DictConfig) -> None:
    """Type checks Lightning leaves until training has started."""
    for key in TRAINER_INTS + TRAINER_NUMBERS:
        value = node[key] if key in node else None  # noqa: SIM401 (get() raises in struct mode)
        kinds = (int,) if key in TRAINER_INTS else (int, float)
        least = LEAST.get(key, 0)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, kinds) or value < least
        ):
            kind = "an integer" if key in TRAINER_INTS else "a number"
            raise ConfigError(f"trainer.{key} must be {kind} >= {least} or null, got {value!r}")


def check_checkpoint_callbacks(callbacks: list[Any]) -> None:
    """Name the clash before Lightning refuses two ModelCheckpoints that save alike (it could
    not tell their states apart on resume)."""
    keys = [c.state_key for c in callbacks if isinstance(c, ModelCheckpoint)]
    if len(keys) != len(set(keys)):
        raise ConfigError(
            "callbacks: two ModelCheckpoint callbacks with the same monitor, mode and "
            "interval; drop one, or give them different settings"
        )


def check_early_stopping(callbacks: list[Any]) -> None:
    """Lightning takes a negative patience and stops at the first epoch without a word."""
    for callback in callbacks:
        if isinstance(callback, EarlyStopping) and callback.patience < 0:
            raise ConfigError(
                f"callbacks: EarlyStopping patience must be >= 0 (epochs without improvement "
                f"before stopping), got {callback.patience}"
            )


def build_trainer(cfg: DictConfig, callbacks: list[Any], loggers: list[Any]) -> pl.Trainer:
    check_trainer_values(cfg.trainer)
    check_checkpoint_callbacks(callbacks)
    check_early_stopping(callbacks)
    plugins: list[Any] = []
    if "plugins" not in cfg.trainer:  # a trainer.plugins of one's own replaces both
        plugins.append(AtomicCheckpointIO())
        if (slurm := cluster_environment()) is not None:
            plugins.append(slurm)  # Lightning's, without its requeue: submitit's is the one
    trainer = instantiate(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, plugins=plugins
    )
    if not isinstance(trainer, pl.Trainer):
        raise ConfigError(f"trainer: {cfg.trainer._target_} did not build a lightning Trainer")
    return trainer


def _as_floats(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    return {k: float(v) for result in results for k, v in result.items()}


def fit(cfg: DictConfig) -> dict[str, float]:
    """Train and test one run as ``cfg`` describes; returns the final val and test metrics.

    Everything the user configured is built and checked before the first training step.
    Only rank 0 writes ``config.yaml`` and ``metrics.json`` into ``cfg.paths.output_dir``.
    """
    check_top_level(cfg)
    warn_if_untested()
    run = RunDir(Path(cfg.paths.output_dir))
    seed = pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.seed is None:  # record the seed drawn, so config.yaml repeats this run
        with open_dict(cfg):
            cfg.seed = seed
    resumed = resume_in_place(cfg, run)
    allow_data_change = bool(cfg.get("allow_data_change", False))
    if resumed:  # it continues on the data it trained on, or says so
        check_data(run.path, allow_data_change)
    dm = build_data(cfg)
    if resumed:
        check_splits(run.path, dm, allow_data_change)
    with open_dict(cfg):  # eval, predict and export rebuild it from any working directory
        cfg.data.update(absolute_paths(cfg.data))
    model = build_model(cfg, dm)
    if (ckpt := cfg.get("ckpt_path")) and callable(
        check := getattr(model, "check_running_metrics", None)
    ):
        check(load_checkpoint(ckpt, mmap=True))  # what a resume would set, before any write
    callbacks = instantiate_dict(cfg.get("callbacks"), "callbacks")
    callbacks.insert(0, RandomState())  # exact resume, whatever the configured callbacks
    callbacks.insert(0, RecordRanks(run.env))  # with 2+ processes: their hosts
    if monitor := cfg.model.get("monitor"):
        callbacks.insert(0, MonitorCheck(monitor))
    if (pruning := trial_pruning(cfg)) is not None:  # a trial of a study with a pruner
        callbacks.append(pruning)
    require_for_loggers(cfg.get("logger"))
    loggers = instantiate_dict(cfg.get("logger"), "logger")
    trainer = build_trainer(cfg, callbacks, loggers)

    if trainer.is_global_zero:
        record_start(run, cfg, dm)
    suggested_lr = None
    if cfg.get("tune_lr"):
        suggested_lr = tune_learning_rate(cfg, model, dm, run.path, trainer.world_size)
    for logger in trainer.loggers:
        logger.log_hyperparams(redact_config(OmegaConf.to_container(cfg, resolve=True)))

    return _train_and_test(cfg, trainer, model, dm, run, suggested_lr)


def record_start(run: RunDir, cfg: DictConfig, dm: Any) -> None:
    """What a run writes before it trains, all that eval, predict and export read back:
    ``config.yaml``, ``data.json``, ``env.json``, ``classes.json`` and the DataModule's own
    artifacts (a text vocabulary)."""
    save_config(cfg, run.config)
    record_data(cfg.data, dm, run.path)
    environment = describe(config_dirs()[0].parent, run.path)  # the project's tree
    write_atomic(run.env, json.dumps(environment, indent=2))
    if (names := getattr(dm, "class_names", None)) is not None:
        write_atomic(run / CLASSES, json.dumps(list(names), indent=1))
    if callable(save := getattr(dm, "save_artifacts", None)):
        save(run.path)


def _train_and_test(
    cfg: DictConfig,
    trainer: pl.Trainer,
    model: Any,
    dm: Any,
    run: RunDir,
    suggested_lr: float | None,
) -> dict[str, float]:
    """Fit, test the best checkpoint, write metrics.json with what the callbacks report."""
    clock = Clock()
    with lightning_says_what_is_missing(model):
        trainer.fit(model, datamodule=dm, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    compute = clock.spent(trainer)
    # Now: testing the best checkpoint below restores the callbacks' states saved in it.
    reason = stop_reason(trainer)
    plateau = reached_plateau(trainer, reason)
    epochs, steps = trainer.current_epoch, trainer.global_step
    diagnostics = collect_diagnostics(trainer, dm, suggested_lr)

    best = str(getattr(trainer.checkpoint_callback, "best_model_path", "") or "")
    ckpt = best or None  # no checkpoint (fast_dev_run): evaluate the weights in memory
    metrics: dict[str, float] = {}
    reported: dict[str, Any] = {}  # the callbacks' sections of metrics.json, e.g. baselines
    if cfg.get("test", True):
        metrics.update(
            _as_floats(
                trainer.validate(
                    model, datamodule=dm, ckpt_path=ckpt, verbose=False, weights_only=True
                )
            )
        )
        metrics.update(
            _as_floats(
                trainer.test(model, datamodule=dm, ckpt_path=ckpt, verbose=False, weights_only=True)
            )
        )
        for callback in getattr(trainer, "callbacks", []):  # e.g. calibration, baselines
            if callable(report := getattr(callback, "report_metrics", None)):
                metrics.update(report())
            if callable(summarize := getattr(callback, "report_summary", None)):
                reported.update(summarize())
    if trainer.is_global_zero:
        summary = {
            **reported,
            "metrics": metrics,
            "best_checkpoint": best or None,
            "epochs": epochs,
            "global_step": steps,
            "seed": cfg.seed,
            "stop_reason": reason,
            "plateau": plateau,
            "compute": compute,
        }
        write_atomic(run.metrics, json.dumps(summary, indent=2, allow_nan=True))
        write_atomic(run / DIAGNOSTICS, json.dumps(diagnostics, indent=2, allow_nan=True))
    return metrics


class Clock:
    """What a fit cost, for a sweep's compute ledger: wall seconds, CPU seconds of this process
    and of the DataLoader workers it reaped, and GPU seconds (wall seconds times the GPUs of this
    process's rank; multiply by ``world_size`` for all ranks)."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        self.children = _children_cpu()

    def spent(self, trainer: pl.Trainer) -> dict[str, float | int]:
        wall = time.perf_counter() - self.wall
        gpu = trainer.strategy.root_device.type == "cuda"
        return {
            "fit_seconds": round(wall, 3),
            "cpu_seconds": round(
                time.process_time() - self.cpu + _children_cpu() - self.children, 3
            ),
            "gpu_seconds": round(wall, 3) if gpu else 0.0,
            "world_size": int(trainer.world_size),
        }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return float(usage.ru_utime + usage.ru_stime)


def stop_reason(trainer: pl.Trainer) -> str:
    """Why training ended: a diagnostic's stop, early stopping, an interruption, or the limits."""
    callbacks = getattr(trainer, "callbacks", [])
    for callback in callbacks:
        if reason := getattr(callback, "stop_reason", None):
            return str(reason)
    for callback in callbacks:
        if isinstance(callback, EarlyStopping) and callback.stopping_reason.value:
            message = callback.stopping_reason_message or f"{callback.monitor} stopped improving"
            return f"early stopping at epoch {callback.stopped_epoch}: {message}"
    if trainer.interrupted:
        return f"interrupted at epoch {trainer.current_epoch}, step {trainer.global_step}"
    if 0 <= trainer.max_steps <= trainer.global_step:
        return f"reached trainer.max_steps={trainer.max_steps}"
    return f"completed trainer.max_epochs={trainer.max_epochs}"


def reached_plateau(trainer: pl.Trainer, reason: str) -> bool | None:
    """Whether training ended on the monitored metric's plateau: True when early stopping ran
    out of patience, False when a budget (``trainer.max_epochs`` or ``max_steps``) ended it
    first, which the log says with how recently the metric improved; None where it cannot say
    (no early stopping, a divergence, an interruption)."""
    callbacks = getattr(trainer, "callbacks", [])
    stopper = next((c for c in callbacks if isinstance(c, EarlyStopping)), None)
    if stopper is None:
        return None
    if stopper.stopping_reason is EarlyStoppingReason.PATIENCE_EXHAUSTED:
        return True
    if not reason.startswith(("completed trainer.", "reached trainer.")):
        return None
    log.warning(
        "training %s before %s reached a plateau: it had not improved for %d epoch(s), and "
        "early stopping waits %d; a larger budget would likely improve it",
        reason,
        stopper.monitor,
        stopper.wait_count,
        stopper.patience,
    )
    return False


def collect_diagnostics(trainer: pl.Trainer, dm: Any, suggested_lr: float | None) -> dict[str, Any]:
    """The evidence the diagnostics left: their events, leakage counts, the LR test."""
    found: dict[str, Any] = {"leakage": getattr(dm, "leakage_counts", {}), "lr_find": suggested_lr}
    for callback in getattr(trainer, "callbacks", []):
        report = getattr(callback, "diagnostics", None)
        if callable(report):
            found.update(report())
    return found


def objective(metrics: dict[str, float], name: str | None) -> float | None:
    """The value a sweeper optimises; NaN if the run did not produce it."""
    if not name:
        return None
    if name not in metrics:
        log.warning("optimized_metric %r not among the run's metrics %s", name, sorted(metrics))
        return math.nan
    return metrics[name]
