"""Task modules: metrics agree with torchmetrics' own, hyperparameters stay plain."""

from __future__ import annotations

import functools

import pytest
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from trainlab.errors import ConfigError
from trainlab.models import ClassificationTask
from trainlab.models.classification import confusion_metrics
from trainlab.nets import MLP


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("num_classes", [2, 3, 10])
def test_confusion_metrics_match_torchmetrics(seed: int, num_classes: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, (200,), generator=gen)
    pred = torch.where(
        torch.rand(200, generator=gen) < 0.6,
        target,
        torch.randint(0, num_classes, (200,), generator=gen),
    )
    if num_classes == 10:
        pred[pred == 9] = 8  # a class never predicted
        target[target == 7] = 6  # a class never present
    cm = MulticlassConfusionMatrix(num_classes)(pred, target)
    ours = confusion_metrics(cm)
    acc = MulticlassAccuracy(num_classes, average="micro")(pred, target)
    f1 = MulticlassF1Score(num_classes, average="macro")(pred, target)
    assert ours["acc"] == pytest.approx(float(acc), abs=1e-6)
    assert ours["f1"] == pytest.approx(float(f1), abs=1e-6)


def test_checkpoint_hyperparameters_are_plain_values() -> None:
    task = ClassificationTask(
        MLP((4,), 3),
        num_classes=3,
        class_names=["a", "b", "c"],
        optimizer=functools.partial(torch.optim.Adam, lr=0.1),
    )
    assert set(task.hparams) == {
        "num_classes",
        "class_names",
        "label_smoothing",
        "monitor",
        "mode",
        "log_gap",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1}, "at least 2 classes"),
        ({"class_names": ["a"]}, "1 class names for 3 classes"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in"),
        ({"monitor": "train/loss"}, "must name a validation metric"),
        (
            {"optimizer": functools.partial(torch.optim.SGD, lr=0.1, momentum=-1)},
            "model.optimizer: Invalid momentum",
        ),
    ],
)
def test_bad_task_settings(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "num_classes": 3,
        "optimizer": functools.partial(torch.optim.Adam, lr=0.1),
    }
    with pytest.raises(ConfigError, match=message):
        ClassificationTask(MLP((4,), 3), **{**args, **kwargs})  # type: ignore[arg-type]
