"""Several optimiser steps per Lightning step (``steps_per_call``).

Lightning spends about half a millisecond of hook dispatch and bookkeeping on every batch: on a
small network that is as much as the step itself. With ``steps_per_call=k`` the DataModule hands
Lightning groups of ``k`` batches and the task takes one optimiser step per batch of the group
(manual optimisation), so that cost is paid once per group. The batches, their order, the random
numbers, clipping and schedules are those of the plain path, and so are the weights; the tests
compare the two. What changes is what per-batch hooks see: ``on_train_batch_start/end`` run once
per group, with the group as the batch.

``auto`` (the default) groups up to :data:`AUTO_GROUP` batches whenever nothing in the run counts
Lightning batches, and otherwise keeps the plain path; :func:`blockers` lists what does.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from trainlab.errors import ConfigError

log = logging.getLogger(__name__)

AUTO_GROUP = 32  # batches per Lightning step under ``auto``


def check_steps_per_call(value: Any) -> int | None:
    """The requested group size; None for ``auto``."""
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"steps_per_call must be 'auto' or an integer >= 1, got {value!r}")
    return value


def blockers(trainer: pl.Trainer, task: Any, dm: Any) -> list[str]:
    """The settings of this run that count Lightning batches, or that a group of batches per
    step does not support; empty when grouping changes nothing but the speed."""
    from trainlab.models.task import Task

    found = []
    if not isinstance(task, Task):
        found.append(f"the model {type(task).__name__} is not a trainlab Task")
    elif type(task).training_step is not Task.training_step:
        found.append(f"{type(task).__name__} has a training_step of its own")
    elif not task.automatic_optimization:
        found.append(f"{type(task).__name__} optimises manually already")
    if not hasattr(dm, "steps_per_call"):
        found.append(f"the DataModule {type(dm).__name__} serves its own batches")
    if trainer.world_size > 1:
        found.append(f"{trainer.world_size} processes (a group of backward passes per DDP step)")
    if getattr(trainer, "fast_dev_run", False):
        found.append("trainer.fast_dev_run")
    if trainer.accumulate_grad_batches != 1:
        found.append(f"trainer.accumulate_grad_batches={trainer.accumulate_grad_batches}")
    if trainer.val_check_interval != 1.0:
        found.append(f"trainer.val_check_interval={trainer.val_check_interval}")
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = getattr(trainer, name)
        if isinstance(value, int) or value != 1.0:  # an int counts batches; 1.0 is all of them
            found.append(f"trainer.{name}={value}")
    if overfit := getattr(trainer, "overfit_batches", 0):
        found.append(f"trainer.overfit_batches={overfit}")
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, ModelCheckpoint) and (
            callback._every_n_train_steps or callback._train_time_interval
        ):
            found.append(
                f"ModelCheckpoint(every_n_train_steps={callback._every_n_train_steps}, "
                f"train_time_interval={callback._train_time_interval})"
            )
    return found


def choose_steps_per_call(trainer: pl.Trainer, task: Any, dm: Any, requested: Any) -> int:
    """The group size for this run (1: the plain path).

    Raises:
        ConfigError: a bad value, or an explicit size > 1 with settings that count batches.
    """
    size = check_steps_per_call(requested)
    found = blockers(trainer, task, dm)
    if size is None:
        if found:
            log.debug("steps_per_call=auto keeps one batch per step: %s", "; ".join(found))
            return 1
        return AUTO_GROUP
    if size > 1 and found:
        raise ConfigError(
            f"steps_per_call={size} cannot be used with: {'; '.join(found)}. "
            "Use steps_per_call=1 (or auto, which picks 1 here)."
        )
    return size


def apply_steps_per_call(trainer: pl.Trainer, task: Any, dm: Any, size: int) -> None:
    """Set ``task`` and ``dm`` up for ``size`` batches per Lightning step."""
    if size == 1:
        return
    # Manual optimisation: Lightning refuses its own clipping there, so the task clips, at the
    # point where the automatic loop would (after on_before_optimizer_step).
    if trainer.gradient_clip_val:
        algorithm = trainer.gradient_clip_algorithm or "norm"
        task.clip = (float(trainer.gradient_clip_val), str(getattr(algorithm, "value", algorithm)))
        trainer.gradient_clip_val = None
    task.automatic_optimization = False
    task.steps_per_call = dm.steps_per_call = size
    log.debug("training with up to %d optimiser steps per Lightning step", size)


def amortise(trainer: pl.Trainer, task: Any, dm: Any, requested: Any) -> int:
    """Choose the group size for ``requested`` and set ``task`` and ``dm`` up for it; returns
    the size (1: the plain path)."""
    size = choose_steps_per_call(trainer, task, dm, requested)
    apply_steps_per_call(trainer, task, dm, size)
    return size
