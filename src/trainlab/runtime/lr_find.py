"""The learning-rate range test (``tune_lr=true``): Lightning's LR finder on a throwaway trainer."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from trainlab.errors import ConfigError
from trainlab.runtime.build import instantiate
from trainlab.trust.files import save_figure

log = logging.getLogger(__name__)


def tune_learning_rate(
    cfg: DictConfig, model: Any, dm: Any, out_dir: Path, world_size: int
) -> float | None:
    """Run the range test, save ``lr_find.png`` and switch ``model``'s optimiser to the
    suggested learning rate. Returns the suggestion (None when the finder gives none).

    The search trains on a separate trainer with no callbacks or loggers; the finder restores
    the initial weights afterwards, so the real run starts from the same point.

    Raises:
        ConfigError: with more than one process (run the test on one device, then set the lr).
    """
    factory = getattr(model, "optimizer_factory", None)
    if factory is None:
        raise ConfigError(
            f"tune_lr sets the learning rate of model.optimizer; {type(model).__name__} builds "
            "its own optimiser, so run Lightning's Tuner(trainer).lr_find on it yourself"
        )
    if world_size > 1:
        raise ConfigError(
            "tune_lr runs on one process; find the rate without trainer=ddp*, "
            "then pass it as model.optimizer.lr"
        )
    from lightning.pytorch.tuner import Tuner

    scratch = out_dir / "lr_find"
    trainer = instantiate(
        cfg.trainer,
        "trainer",
        callbacks=[],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(scratch),
    )
    finder = Tuner(trainer).lr_find(model, datamodule=dm, update_attr=False)
    if finder is None:
        return None
    from matplotlib.figure import Figure

    figure = finder.plot(suggest=True)
    if isinstance(figure, Figure):
        save_figure(figure, out_dir / "lr_find.png")
    suggestion = finder.suggestion()
    if suggestion is None:
        log.warning(
            "the LR finder gave no suggestion; keeping lr=%s", cfg.model.optimizer.get("lr")
        )
        return None
    model.optimizer_factory = functools.partial(
        factory.func, *factory.args, **{**factory.keywords, "lr": suggestion}
    )
    log.info("LR range test suggests lr=%.3g (plot: %s)", suggestion, out_dir / "lr_find.png")
    return float(suggestion)
