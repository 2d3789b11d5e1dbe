"""The LightningModule shared by all tasks: one step for every split, metrics per epoch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import lightning.pytorch as pl
import torch
from torch import nn
from torchmetrics import MetricCollection

from trainlab.errors import ConfigError

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
        self._loss_sum: dict[str, torch.Tensor] = {}
        self._count: dict[str, int] = {}

    # -- what a task defines --------------------------------------------------------------
    metric_names: tuple[str, ...] = ("loss",)  # what ``_log_epoch`` logs per split

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
        self.split_metrics(split).update(*self.metric_inputs(out.detach(), y))
        return loss

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        return self.model_step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.model_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.model_step(batch, "test")

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
        # Every value is the same on all ranks by now; sync_dist only tells Lightning so.
        self.log(f"{split}/loss", values["loss"], sync_dist=True, prog_bar=split != "test")
        self.log_dict(
            {f"{split}/{k}": v for k, v in values.items() if k != "loss"},
            sync_dist=True,
            prog_bar=split == "val",
        )
        if split == "train" and self.hparams["log_gap"]:
            # Validation ran before this hook, so val/* hold this epoch's values.
            seen = self.trainer.callback_metrics
            gaps = {
                f"gap/{k}": v - seen[f"val/{k}"] for k, v in values.items() if f"val/{k}" in seen
            }
            self.log_dict(gaps, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

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
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        scheduler = self.scheduler_factory
        if scheduler is None:
            return optimizer
        config = scheduler(
            optimizer,
            total_steps=self.trainer.estimated_stepping_batches,
            monitor=self.hparams["monitor"],
            mode=self.hparams["mode"],
        )
        return {"optimizer": optimizer, "lr_scheduler": config}
