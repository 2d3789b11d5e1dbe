"""The LightningModule shared by all tasks: one step for every split, metrics per epoch."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torchmetrics import MetricCollection

from trainlab.data.loader import BatchGroup, GroupedBatches
from trainlab.errors import ConfigError
from trainlab.loggers.scalars import epoch_step, log_scalars

SPLITS = ("train", "val", "test")
MODES = ("min", "max")

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., dict[str, Any]]


def check_optimizer(optimizer: OptimizerFactory) -> None:
    """Build ``optimizer`` on a throwaway parameter so bad settings fail before training."""
    lr = getattr(optimizer, "keywords", {}).get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, int | float) or lr <= 0):
        raise ConfigError(f"model.optimizer.lr must be a number > 0, got {lr!r}")
    try:
        optimizer(params=[nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model.optimizer: {err}") from err


class Task(pl.LightningModule):
    """Trains an injected ``net`` for one task; subclasses define the loss and the metrics.

    Per step only the loss is computed and metric states are updated; losses and metrics are
    logged once per epoch (``train/loss``, ``val/acc``, ...), which keeps Lightning's per-step
    overhead small and avoids a host sync on every step.

    Args:
        net: any ``nn.Module`` mapping a batch of inputs to ``(B, num_outputs)``.
        optimizer: partial optimiser, called with ``params``.
        scheduler: partial scheduler factory (see :mod:`trainlab.models.schedulers`) or None.
        monitor: the validation metric that decides the best checkpoint and plateau schedules.
        mode: ``"max"`` or ``"min"``: whether a larger ``monitor`` is better.
        log_gap: log the generalization gap ``gap/<metric>`` (train minus val) every epoch.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        monitor: str = "val/loss",
        mode: str = "min",
        log_gap: bool = True,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"model.mode {mode!r} is unknown; use one of {MODES}")
        if monitor.startswith("val/") and monitor[4:] not in self.metric_names:
            raise ConfigError(
                f"model.monitor {monitor!r} is not a metric this task logs; use one of "
                f"{', '.join('val/' + m for m in self.metric_names)}"
            )
        if not monitor.startswith("val/"):
            raise ConfigError(
                f"model.monitor must name a validation metric (val/...), got {monitor!r}"
            )
        check_optimizer(optimizer)
        # Plain values only: checkpoints stay loadable with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.net = net
        # ModuleDict keys must not shadow Module attributes such as .train
        self.metrics = nn.ModuleDict({f"{split}_metrics": self.make_metrics() for split in SPLITS})
        self._metric_list = {
            s: list(self.split_metrics(s).values(copy_state=False)) for s in SPLITS
        }
        self._loss_sum: dict[str, torch.Tensor] = {}
        self._count: dict[str, int] = {}
        # Set by :func:`trainlab.runtime.amortise.amortise` when one Lightning step trains on a
        # group of batches: the group size, and the gradient clipping the task then does itself.
        self.steps_per_call = 1
        self.clip: tuple[float, str] | None = None
        self._plateau_monitor: str | None = None

    # -- what a task defines --------------------------------------------------------------
    metric_names: tuple[str, ...] = ("loss",)  # what ``_log_epoch`` logs per split
    # During fit, epoch metrics skip self.log (see _log_fit_epoch); False sends them through it.
    direct_epoch_logging = True

    def make_metrics(self) -> MetricCollection:
        raise NotImplementedError

    def epoch_metrics(self, computed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The metrics to log from what the metric collection computed over an epoch."""
        return computed

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metric_inputs(
        self, out: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the metrics compare: ``(predictions, targets)``."""
        return out, y

    def predict_outputs(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def split_metrics(self, split: str) -> MetricCollection:
        return cast(MetricCollection, self.metrics[f"{split}_metrics"])

    # -- the one step -------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def model_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        x, y = batch
        out = self.net(x)  # (B, num_outputs)
        loss = self.loss(out, y)
        n = len(y)
        # Accumulate on device; read back once per epoch.
        detached = loss.detach() * n
        self._loss_sum[split] = (
            self._loss_sum[split] + detached if split in self._loss_sum else detached
        )
        self._count[split] = self._count.get(split, 0) + n
        inputs = self.metric_inputs(out.detach(), y)
        for metric in self._metric_list[split]:  # each directly: the collection's update costs 2x
            metric.update(*inputs)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if isinstance(batch, BatchGroup):
            return self._train_group(batch, batch_idx)
        return self.model_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        for one in batch if isinstance(batch, BatchGroup) else [batch]:
            self.model_step(one, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        for one in batch if isinstance(batch, BatchGroup) else [batch]:
            self.model_step(one, "test")

    # -- several optimiser steps per Lightning step -------------------------------------
    def _train_group(self, group: BatchGroup, group_idx: int) -> dict[str, torch.Tensor] | None:
        """One optimiser step per batch of ``group``, as the automatic loop would take them.

        Backward and the optimiser step go through Lightning (precision plugin, callback
        hooks, step counting); clipping happens in :meth:`on_before_optimizer_step` and
        step-interval schedulers are stepped here, where Lightning's automatic loop does both.
        """
        if self.automatic_optimization:
            raise RuntimeError(
                "a BatchGroup needs manual optimisation; set it up with "
                "trainlab.runtime.amortise.amortise"
            )
        optimizer = cast(pl.core.optimizer.LightningOptimizer, self.optimizers())
        max_steps = self.trainer.max_steps
        losses = []
        for i, batch in enumerate(group):
            if 0 <= max_steps <= self.trainer.global_step:
                break
            loss = self.model_step(batch, "train")
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            self._step_schedulers("step", group_idx * self.steps_per_call + i)
            losses.append(loss.detach())
        if not losses:
            return None
        # Lightning counts one logging step per Lightning step; count every optimiser step, so
        # that loggers put epoch metrics at the same step as on the plain path.
        self.trainer.fit_loop.epoch_loop._batches_that_stepped += len(losses) - 1
        step_losses = torch.stack(losses)
        return {"loss": step_losses.mean(), "step_losses": step_losses}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # The automatic loop clips right after this hook; under manual optimisation we do.
        if self.clip is not None and not self.automatic_optimization:
            value, algorithm = self.clip
            self.configure_gradient_clipping(optimizer, value, algorithm)

    def _step_schedulers(self, interval: str, index: int) -> None:
        """Step the schedulers of ``interval`` whose frequency divides ``index + 1`` (the batch
        index in the epoch, or the epoch), as Lightning's automatic loop does."""
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != interval or (index + 1) % config.frequency:
                continue
            value = None
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                monitor = self._plateau_monitor or self.hparams["monitor"]
                value = self.trainer.callback_metrics.get(monitor)
                if value is None:
                    raise ConfigError(
                        f"the plateau scheduler monitors {monitor!r}, which was not logged; "
                        f"logged: {sorted(self.trainer.callback_metrics)}"
                    )
            self.lr_scheduler_step(config.scheduler, value)

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return self.predict_outputs(self.net(x))

    # -- once per epoch -----------------------------------------------------------------
    def _log_epoch(self, split: str) -> None:
        if split not in self._count:
            return
        loss = self._loss_sum.pop(split) / self._count.pop(split)
        # Ranks see equal sample counts, so the mean over ranks of their means is the mean.
        values = {"loss": self.trainer.strategy.reduce(loss, reduce_op="mean")}
        metrics = self.split_metrics(split)
        values.update(self.epoch_metrics(metrics.compute()))  # reduced over ranks already
        metrics.reset()
        named = {f"{split}/{k}": v for k, v in values.items()}
        shown = [k for k in named if (split == "val") or (k == "train/loss")]
        gap = self._gap(values) if split == "train" and self.hparams["log_gap"] else {}
        trainer = self.trainer
        if not self.direct_epoch_logging or trainer.state.fn != TrainerFn.FITTING:
            # Every value is the same on all ranks by now; sync_dist only tells Lightning so.
            for name, value in named.items():
                self.log(name, value, sync_dist=True, prog_bar=name in shown)
            if gap:
                log_scalars(trainer, gap, epoch=True)
        elif not trainer.sanity_checking:  # Lightning drops what the sanity check logs
            self._log_fit_epoch(named, gap, shown)

    def _gap(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        """Train minus validation, per metric. Validation ran before the train epoch ends, so
        ``val/*`` hold this epoch's values. Nothing monitors the gap; it only goes to loggers."""
        seen = self.trainer.callback_metrics
        names = [k for k in values if f"val/{k}" in seen]
        if not names:
            return {}
        gaps = torch.stack([values[k] - seen[f"val/{k}"] for k in names]).tolist()
        return {f"gap/{k}": v for k, v in zip(names, gaps, strict=True)}

    def _log_fit_epoch(
        self, named: dict[str, torch.Tensor], gap: dict[str, float], shown: list[str]
    ) -> None:
        """Put a fit epoch's metrics where ``self.log`` would put them: in
        ``trainer.callback_metrics`` (checkpointing, early stopping, plateau schedules), in the
        progress bar and in every logger, at the step Lightning gives epoch metrics. ``gap``
        goes only to the loggers, in the same row.

        ``self.log`` costs about 0.3 ms a value in Lightning: on a small net, more than all the
        rest of an epoch's logging. ``validate`` and ``test`` keep ``self.log``, since their
        return values and result tables come from it.
        """
        trainer = self.trainer
        trainer.callback_metrics.update(named)
        trainer.progress_bar_metrics.update({k: float(named[k]) for k in shown})
        logged: dict[str, Any] = {**named, **gap, "epoch": trainer.current_epoch}
        trainer._logger_connector.log_metrics(logged, step=epoch_step(trainer))

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")
        loop = self.trainer.fit_loop
        # Epoch-interval schedulers under manual optimisation, on the condition Lightning's
        # automatic loop uses: a whole epoch ran, and it is not the replay of a restored one.
        whole_epoch = loop.epoch_loop._num_ready_batches_reached()
        if not self.automatic_optimization and not loop.restarting and whole_epoch:
            self._step_schedulers("epoch", self.current_epoch)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # -- exact resume ---------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning restores weights, optimiser, schedulers and loops but not the random
        # generators; without them a resumed run draws other dropout masks than an
        # uninterrupted one. (The batch order depends only on (seed, epoch) already.)
        checkpoint["rng_states"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states")
        if states is None:
            return
        torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])

    # -- optimisation ---------------------------------------------------------------------
    def _optimizer_steps(self) -> float:
        """The optimiser steps of the whole fit: Lightning's estimate counts its own steps, one
        per group when batches are grouped."""
        estimated = self.trainer.estimated_stepping_batches  # also loads the train loader
        loader = self.trainer.train_dataloader
        if not isinstance(loader, GroupedBatches):
            return estimated
        # Grouping rules out accumulation and batch limits, so every batch is one step.
        epochs = self.trainer.max_epochs
        total = math.inf if epochs is None or epochs < 0 else len(loader.batches) * max(epochs, 1)
        max_steps = self.trainer.max_steps
        return total if max_steps == -1 else min(total, max_steps)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        scheduler = self.scheduler_factory
        if scheduler is None:
            return optimizer
        config = scheduler(
            optimizer,
            total_steps=self._optimizer_steps(),
            monitor=self.hparams["monitor"],
            mode=self.hparams["mode"],
        )
        if not self.automatic_optimization:
            # Lightning drops these under manual optimisation; _step_schedulers uses them.
            self._plateau_monitor = config.pop("monitor", None)
            config.pop("strict", None)
        return {"optimizer": optimizer, "lr_scheduler": config}
