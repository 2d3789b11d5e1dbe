"""Dead ReLU units: units that output zero for every sample of a validation epoch."""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torch.utils.hooks import RemovableHandle
from typing_extensions import override

from trainlab.errors import ConfigError

log = logging.getLogger(__name__)


class DeadUnits(pl.Callback):
    """During validation, tracks for every ``nn.ReLU`` which units (features, or channels of
    conv maps) were ever positive; logs ``dead_units/<layer>`` (the fraction that never was)
    and warns when a layer's fraction exceeds ``threshold``.

    Args:
        threshold: warn above this fraction of dead units in a layer, in (0, 1].
    """

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0 < threshold <= 1:
            raise ConfigError(f"callbacks.dead_units.threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self._alive: dict[str, torch.Tensor] = {}
        self._handles: list[RemovableHandle] = []
        self.events: list[dict[str, Any]] = []
        self.last: dict[str, float] = {}

    def _hook(self, name: str) -> Any:
        def record(module: nn.Module, inputs: Any, out: torch.Tensor) -> None:
            # (B, F) -> per feature; (B, C, ...) -> per channel
            fired = out > 0
            positive = fired.any(0) if out.ndim == 2 else fired.transpose(0, 1).flatten(1).any(1)
            self._alive[name] = self._alive[name] | positive if name in self._alive else positive

        return record

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        self._alive = {}
        self._handles = [
            m.register_forward_hook(self._hook(n))
            for n, m in pl_module.named_modules()
            if isinstance(m, nn.ReLU)
        ]

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if not self._alive:  # not fitting, or no ReLU
            return
        # A unit is dead only if no rank saw it fire: sum the per-rank masks, then read back
        # every layer at once.
        names = list(self._alive)
        counts = torch.cat([self._alive[n].float() for n in names])
        fired = trainer.strategy.reduce(counts, reduce_op="sum") > 0
        sizes = [len(self._alive[n]) for n in names]
        fractions = torch.stack([1 - part.float().mean() for part in fired.split(sizes)]).tolist()
        dead = dict(zip(names, fractions, strict=True))
        self.last, self._alive = dead, {}
        for name, fraction in dead.items():  # equal on every rank by now
            pl_module.log(f"dead_units/{name}", fraction)
        bad = {n: round(f, 3) for n, f in dead.items() if f > self.threshold}
        if bad and not self.events:
            message = (
                f"dead ReLU units at epoch {trainer.current_epoch}: fraction of units that output "
                f"zero for every validation sample {bad} (threshold {self.threshold}). Remedies: "
                "net.activation=leaky_relu, a lower learning rate, or a different initialisation."
            )
            self.events.append(
                {
                    "kind": "dead_units",
                    "epoch": trainer.current_epoch,
                    "message": message,
                    "layers": bad,
                }
            )
            log.warning(message)

    def diagnostics(self) -> dict[str, Any]:
        return {"dead_units": {"events": self.events, "last_epoch": self.last}}
