"""Learning curves: train and validation loss and the main metric per epoch, as a picture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from typing_extensions import override

from trainlab.errors import ConfigError
from trainlab.loggers.images import log_image
from trainlab.trust.files import save_figure, write_atomic
from trainlab.trust.run_dir import LEARNING_CURVES, PICTURES

PREFIXES = ("train/", "val/")


def draw_learning_curves(saved: dict[str, Any], out: Path) -> Path:
    """``learning_curves.png`` in ``out`` from what :class:`LearningCurves` saved in
    ``learning_curves.json``."""
    history = {int(epoch): values for epoch, values in saved["history"].items()}
    (picture,) = PICTURES[LEARNING_CURVES]
    return plot_learning_curves(history, saved["metric"], out / picture)


def plot_learning_curves(history: dict[int, dict[str, float]], metric: str, path: Path) -> Path:
    """Loss and ``metric`` for train and val per epoch; the best val-loss epoch is marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = sorted(history)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name in zip(axes, ("loss", metric), strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            key = f"{split}/{name}"
            points = [(e, history[e][key]) for e in epochs if key in history[e]]
            if points:
                ax.plot(*zip(*points, strict=True), style, marker=".", label=key)
        ax.set(xlabel="epoch", ylabel=name, title=name)
        ax.grid(alpha=0.3)
    val_losses = [(history[e]["val/loss"], e) for e in epochs if "val/loss" in history[e]]
    if val_losses:
        best = min(val_losses)[1]
        for ax in axes:
            ax.axvline(best, color="gray", linestyle=":", label=f"best val loss (epoch {best})")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.92, wspace=0.22)  # fixed: fast
    save_figure(fig, path)
    plt.close(fig)
    return path


class LearningCurves(pl.Callback):
    """Records each epoch's ``train/*`` and ``val/*`` values and, when training ends, writes
    them to ``learning_curves.json`` and draws ``learning_curves.png``, sent to every logger.

    Args:
        metric: the metric drawn beside the loss; default ``acc`` when logged, else the first
            other validation metric.
        dirpath: where the files go; default the trainer's ``default_root_dir``.
        figures: also draw the picture (the config's ``figures``); without it,
            ``python -m trainlab.figures`` draws it later from ``learning_curves.json``.
    """

    def __init__(
        self, metric: str | None = None, dirpath: str | None = None, figures: bool = True
    ) -> None:
        if not isinstance(figures, bool):
            raise ConfigError(
                f"callbacks.learning_curves.figures must be true or false, got {figures!r}"
            )
        self.metric = metric
        self.dirpath = dirpath
        self.figures = figures
        self.history: dict[int, dict[str, float]] = {}
        self.path: Path | None = None

    def _record(self, trainer: pl.Trainer, epoch: int) -> None:
        if epoch < 0 or epoch in self.history:
            return
        values = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(PREFIXES)
        }
        if values:
            self.history[epoch] = values

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, trainer.current_epoch - 1)  # the previous epoch is complete now

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, trainer.current_epoch - 1)
        if not trainer.is_global_zero or not self.history or trainer.sanity_checking:
            return
        keys = {
            k.split("/", 1)[1] for v in self.history.values() for k in v if k.startswith("val/")
        }
        metric = self.metric or (
            "acc" if "acc" in keys else next(iter(sorted(keys - {"loss"})), "loss")
        )
        out = Path(self.dirpath or trainer.default_root_dir)
        out.mkdir(parents=True, exist_ok=True)
        saved = {"metric": metric, "history": self.history}
        write_atomic(out / LEARNING_CURVES, json.dumps(saved, indent=1))
        if self.figures:
            self.path = draw_learning_curves(saved, out)
            log_image(trainer.loggers, "learning_curves", self.path, step=trainer.global_step)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}  # a resumed run draws its whole history

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {int(k): v for k, v in state_dict["history"].items()}

    def diagnostics(self) -> dict[str, Any]:
        return {"learning_curves": str(self.path) if self.path else None}
