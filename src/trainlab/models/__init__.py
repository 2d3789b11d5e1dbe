"""LightningModules ("models"): each trains a plain ``nn.Module`` net, received by injection,
for the data's task (classification or regression)."""

from __future__ import annotations

from typing import Any

from torch import nn

from trainlab.errors import ConfigError
from trainlab.models.base import Model
from trainlab.models.classification import ClassificationModel
from trainlab.models.regression import RegressionModel

MODELS: dict[str, type[Model]] = {
    "classification": ClassificationModel,
    "regression": RegressionModel,
}


def model_for_task(
    net: nn.Module,
    task: str,
    num_classes: int = 0,
    class_names: list[str] | None = None,
    target_mean: float = 0.0,
    target_std: float = 1.0,
    **kwargs: Any,
) -> Model:
    """``model=auto``: the model for the data's ``task``, given what the data knows.

    Args:
        net, task, num_classes, class_names, target_mean, target_std: from the data.
        **kwargs: the settings of the chosen model (optimizer, metrics, monitor, ...).

    Raises:
        ConfigError: an unknown task.
    """
    if task == "classification":
        return ClassificationModel(net, num_classes, class_names, **kwargs)
    if task == "regression":
        return RegressionModel(net, target_mean, target_std, **kwargs)
    raise ConfigError(f"no model for task {task!r}; tasks: {sorted(MODELS)}")


__all__ = ["MODELS", "ClassificationModel", "Model", "RegressionModel", "model_for_task"]
