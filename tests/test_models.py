"""Models: configurable metrics that see probabilities, plain hyperparameters, clear errors."""

from __future__ import annotations

import functools

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score

from trainlab.errors import ConfigError
from trainlab.models import ClassificationModel, RegressionModel, model_for_task
from trainlab.models.metrics import build_metrics, flatten
from trainlab.nets import MLP

ADAM = functools.partial(torch.optim.Adam, lr=0.1)


def classifier(**kwargs: object) -> ClassificationModel:
    args: dict[str, object] = {"num_classes": 3, "optimizer": ADAM, **kwargs}
    return ClassificationModel(MLP((4,), 3), **args)  # type: ignore[arg-type]


def test_default_metrics_match_torchmetrics_on_probabilities() -> None:
    model = classifier()
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 4, generator=gen), torch.randint(0, 3, (50,), generator=gen)
    model.model_step((x, y), "val")
    computed = model.metrics["val_metrics"].compute()
    probs = model(x).softmax(1)
    assert computed["acc"] == pytest.approx(
        float(MulticlassAccuracy(3, average="micro")(probs, y)), abs=1e-6
    )
    assert computed["f1"] == pytest.approx(
        float(MulticlassF1Score(3, average="macro")(probs, y)), abs=1e-6
    )
    expected_loss = torch.nn.functional.cross_entropy(model(x), y)
    assert model.losses["val_loss"].compute() == pytest.approx(
        float(expected_loss.detach()), abs=1e-6
    )


def test_a_metric_is_one_config_entry_and_sees_probabilities() -> None:
    model = classifier(
        metrics={"auroc": "MulticlassAUROC", "top2": {"class": "MulticlassAccuracy", "top_k": 2}}
    )
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(60, 4, generator=gen), torch.randint(0, 3, (60,), generator=gen)
    model.model_step((x, y), "test")
    computed = model.metrics["test_metrics"].compute()
    probs = model(x).softmax(1)
    # AUROC needs scores: it would differ if the metric saw only the argmax
    assert computed["auroc"] == pytest.approx(float(MulticlassAUROC(3)(probs, y)), abs=1e-6)
    assert computed["top2"] == pytest.approx(
        float(MulticlassAccuracy(3, top_k=2)(probs, y)), abs=1e-6
    )
    monitor_ok = classifier(metrics={"auroc": "MulticlassAUROC"}, monitor="val/auroc", mode="max")
    assert monitor_ok.hparams["monitor"] == "val/auroc"


def test_per_class_metrics_are_logged_by_class_name() -> None:
    metrics = build_metrics(
        {"recall": {"class": "MulticlassRecall", "average": None}}, num_classes=3
    )
    metrics.update(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
    values = flatten(metrics.compute(), ["cat", "dog", "eel"])
    assert values == {
        "recall/cat": pytest.approx(1.0),
        "recall/dog": pytest.approx(1.0),
        "recall/eel": pytest.approx(0.5),
    }


def test_checkpoint_hyperparameters_are_plain_values() -> None:
    model = classifier(class_names=["a", "b", "c"])
    assert set(model.hparams) == {
        "num_classes",
        "class_names",
        "label_smoothing",
        "monitor",
        "mode",
        "compile",
    }


def test_auto_follows_the_task() -> None:
    net = MLP((4,), 1)
    reg = model_for_task(net, "regression", target_mean=3.0, target_std=2.0, optimizer=ADAM)
    assert isinstance(reg, RegressionModel) and reg.hparams["target_mean"] == 3.0
    cls = model_for_task(MLP((4,), 3), "classification", num_classes=3, optimizer=ADAM)
    assert isinstance(cls, ClassificationModel)
    with pytest.raises(ConfigError, match="no model for task 'ranking'"):
        model_for_task(net, "ranking", optimizer=ADAM)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1}, "at least 2 classes"),
        ({"class_names": ["a"]}, "1 class names for 3 classes"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in"),
        ({"monitor": "train/loss"}, r"model.monitor 'train/loss' is not a metric .* val/loss"),
        ({"monitor": "val/auroc"}, "use one of val/loss, val/acc, val/f1"),
        ({"mode": "up"}, "model.mode 'up' is unknown"),
        ({"metrics": {"auc": "MultiClassAUROC"}}, r"model.metrics.auc: 'MultiClassAUROC' is not"),
        ({"metrics": {"auc": {"average": "macro"}}}, r"model.metrics.auc: give a torchmetrics"),
        (
            {"metrics": {"acc": {"class": "MulticlassAccuracy", "averag": "micro"}}},
            r"model.metrics.acc \(MulticlassAccuracy\): .*averag",
        ),
        ({"metrics": {"a/b": "MulticlassAccuracy"}}, "must not contain '/'"),
    ],
)
def test_bad_model_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        classifier(**kwargs)
