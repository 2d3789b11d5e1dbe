"""Send a PNG written into the run directory to every active logger that can show images."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger


def log_image(loggers: Iterable[Logger], key: str, path: Path, step: int = 0) -> None:
    """W&B gets an image, TensorBoard an image summary, MLflow an artifact; CSV keeps the file."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(path)], step=step)
        elif isinstance(logger, TensorBoardLogger):
            import matplotlib.image as mpimg

            pixels = mpimg.imread(path)[..., :3]  # (H, W, 3) floats in [0, 1]
            logger.experiment.add_image(key, pixels, global_step=step, dataformats="HWC")
        elif isinstance(logger, MLFlowLogger):
            logger.experiment.log_artifact(logger.run_id, str(path))
