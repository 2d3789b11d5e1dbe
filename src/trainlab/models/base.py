"""The LightningModule every trainlab model shares: one step for every split, metrics per epoch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, cast

import lightning.pytorch as pl
import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection

from trainlab.compat import (
    check_running_metric_state,
    restore_running_metric_state,
    running_metric_state,
)
from trainlab.errors import ConfigError
from trainlab.models.metrics import build_metrics, flatten

# The checkpoint entry of the running train metrics (a run resumed mid-epoch continues them).
RUNNING_METRICS = "trainlab_running_train_metrics"

SPLITS = ("train", "val", "test")
MODES = ("min", "max")

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., dict[str, Any]]


class Model(pl.LightningModule):
    """Trains an injected ``net``; a subclass gives the loss and what the metrics see.

    Each step computes the loss and updates the split's metrics; ``<split>/loss`` and every
    metric are logged once per epoch with ``self.log``.

    Args:
        net: any ``nn.Module`` mapping a batch of inputs to ``(B, num_outputs)``.
        optimizer: partial optimiser, called with ``params``.
        scheduler: partial scheduler factory (see :mod:`trainlab.models.schedulers`) or None.
        metrics: ``{name: torchmetrics class}`` (see :mod:`trainlab.models.metrics`); None
            takes the subclass's ``default_metrics``.
        monitor: the validation metric that decides the best checkpoint and plateau schedules.
        mode: ``"max"`` or ``"min"``: whether a larger ``monitor`` is better.
        compile: compile the net with ``torch.compile`` (in place: checkpoints keep the plain
            net's parameter names, so eval and predict read them with or without it).
    """

    default_metrics: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        metrics: Mapping[str, Any] | None = None,
        monitor: str = "val/loss",
        mode: str = "min",
        compile: bool = False,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"model.mode {mode!r} is unknown; use one of {MODES}")
        collection = build_metrics(
            self.default_metrics if metrics is None else metrics, **self.metric_arguments()
        )
        names = ["loss", *map(str, collection.keys())]
        if monitor not in {f"val/{n}" for n in names}:
            raise ConfigError(
                f"model.monitor {monitor!r} is not a metric this model logs; use one of "
                f"{', '.join('val/' + n for n in names)}"
            )
        # Plain values only: checkpoints stay loadable with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "metrics"], logger=False)
        self.net = net
        if compile:
            self.net.compile()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # Keys must not shadow Module attributes such as .train, hence the suffix.
        self.metrics = nn.ModuleDict({f"{s}_metrics": collection.clone() for s in SPLITS})
        self.losses = nn.ModuleDict(
            {f"{s}_loss": MeanMetric(nan_strategy="disable") for s in SPLITS}
        )

    # -- what a subclass defines ---------------------------------------------------------
    def metric_arguments(self) -> dict[str, Any]:
        """What the data tells the metrics, e.g. ``num_classes``."""
        return {}

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metric_inputs(
        self, out: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the metrics compare: ``(predictions, targets)``."""
        return out, y

    def predict_outputs(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def metric_labels(self) -> list[str] | None:
        """Names for the entries of per-class metrics."""
        return None

    def split_metrics(self, split: str) -> MetricCollection:
        return cast(MetricCollection, self.metrics[f"{split}_metrics"])

    def split_loss(self, split: str) -> MeanMetric:
        return cast(MeanMetric, self.losses[f"{split}_loss"])

    # -- the one step -------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def model_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        x, y = batch
        out = self(x)  # (B, num_outputs)
        loss = self.loss(out, y)
        self.split_loss(split).update(loss.detach(), weight=len(y))
        self.split_metrics(split).update(*self.metric_inputs(out.detach(), y))
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.model_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.model_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.model_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return self.predict_outputs(self(x))

    # -- once per epoch -----------------------------------------------------------------
    def log_epoch(self, split: str) -> None:
        """Compute, log and reset the split's loss and metrics (torchmetrics syncs ranks)."""
        metrics, loss = self.split_metrics(split), self.split_loss(split)
        values = {"loss": loss.compute(), **flatten(metrics.compute(), self.metric_labels())}
        metrics.reset()
        loss.reset()
        for name, value in values.items():
            shown = split == "val" or (name == "loss" and split == "train")
            self.log(f"{split}/{name}", value, prog_bar=shown, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        self.log_epoch("train")

    def _running_train_metrics(self) -> dict[str, Any]:
        found: dict[str, Any] = {"loss": self.split_loss("train")}
        found.update(self.split_metrics("train").items(keep_base=True, copy_state=False))
        return found

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The train split's running loss and metrics go with the weights: a run stopped
        mid-epoch (SIGTERM, a SLURM requeue) and resumed logs that epoch over all its batches,
        as a run never stopped does."""
        states = {k: running_metric_state(m) for k, m in self._running_train_metrics().items()}
        checkpoint[RUNNING_METRICS] = states

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = self.check_running_metrics(checkpoint)
        for name, metric in self._running_train_metrics().items():
            if saved.get(name) is not None:
                restore_running_metric_state(metric, saved[name], holder=self.global_rank == 0)

    def check_running_metrics(self, checkpoint: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint's running train metrics, checked against this model's metrics (the
        run checks them before it writes anything; a checkpoint is data, not instructions).

        Raises:
            ConfigError: naming the entry that does not fit.
        """
        saved = checkpoint.get(RUNNING_METRICS) or {}
        if not isinstance(saved, dict):
            raise ConfigError(f"ckpt_path: its {RUNNING_METRICS} entry is not a mapping")
        for name, metric in self._running_train_metrics().items():
            if saved.get(name) is not None:
                try:
                    check_running_metric_state(metric, saved[name])
                except ValueError as err:
                    raise ConfigError(
                        f"ckpt_path: its {RUNNING_METRICS}[{name!r}] entry does not fit the "
                        f"metric: {err}"
                    ) from err
        return saved

    def on_validation_epoch_end(self) -> None:
        self.log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch("test")

    # -- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(
            optimizer,
            total_steps=self.trainer.estimated_stepping_batches,
            monitor=self.hparams["monitor"],
            mode=self.hparams["mode"],
        )
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
