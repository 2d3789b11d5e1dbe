"""Metric sets from config: ``model.metrics`` maps a name to a torchmetrics class.

    metrics:
      acc: {class: MulticlassAccuracy, average: micro}
      f1: {class: MulticlassF1Score, average: macro}
      auroc: MulticlassAUROC            # a class name alone takes its defaults

A class is a torchmetrics name (looked up in ``torchmetrics.classification``,
``torchmetrics.regression`` and ``torchmetrics``) or a dotted import path. What only the data
knows (``num_classes``) is filled in where the class takes it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torchmetrics import Metric, MetricCollection

from trainlab.errors import ConfigError

MODULES = ("torchmetrics.classification", "torchmetrics.regression", "torchmetrics")


def metric_class(name: str, key: str) -> type[Metric]:
    """The :class:`torchmetrics.Metric` subclass called ``name``.

    Raises:
        ConfigError: naming ``key`` when nothing of that name is a torchmetrics metric.
    """
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), attr, None)
        except ImportError:
            found = None
    else:
        modules = [importlib.import_module(m) for m in MODULES]
        found = next((getattr(m, name) for m in modules if hasattr(m, name)), None)
    if not (inspect.isclass(found) and issubclass(found, Metric)):
        raise ConfigError(
            f"{key}: {name!r} is not a torchmetrics metric; give a class of torchmetrics "
            "(e.g. MulticlassAccuracy, MulticlassAUROC, MulticlassCalibrationError, "
            "MeanSquaredError) or a dotted path to a Metric subclass"
        )
    return found


def build_metrics(specs: Mapping[str, Any], **from_data: Any) -> MetricCollection:
    """One :class:`MetricCollection` from ``{name: class name | {class: ..., **kwargs}}``.

    ``from_data`` (e.g. ``num_classes``) is passed to each class whose constructor takes it and
    that the spec does not set itself.
    """
    metrics: dict[str, Metric | MetricCollection] = {}
    for name, spec in specs.items():
        key = f"model.metrics.{name}"
        if "/" in str(name):
            raise ConfigError(f"{key}: a metric name must not contain '/'")
        if isinstance(spec, str):
            kwargs: dict[str, Any] = {}
            cls = metric_class(spec, key)
        elif isinstance(spec, Mapping) and "class" in spec:
            kwargs = {str(k): v for k, v in spec.items() if k != "class"}
            cls = metric_class(str(spec["class"]), key)
        else:
            raise ConfigError(
                f"{key}: give a torchmetrics class name or {{class: <name>, <argument>: ...}}, "
                f"got {spec!r}"
            )
        accepted = inspect.signature(cls.__init__).parameters
        for arg, value in from_data.items():
            if arg in accepted and arg not in kwargs:
                kwargs[arg] = value
        try:
            metrics[str(name)] = cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{key} ({cls.__name__}): {err}") from err
    return MetricCollection(metrics)


def flatten(
    computed: Mapping[str, Any], labels: list[str] | None = None
) -> dict[str, torch.Tensor]:
    """Scalars to log from what a collection computed: a per-class tensor becomes
    ``name/<class>``, a dict ``name/<key>``."""
    out: dict[str, torch.Tensor] = {}
    for name, value in computed.items():
        if isinstance(value, Mapping):
            out.update(flatten({f"{name}/{k}": v for k, v in value.items()}, labels))
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            out[name] = value.reshape(()).float()
        elif isinstance(value, torch.Tensor) and value.ndim == 1:
            names = labels if labels is not None and len(labels) == len(value) else None
            for i, v in enumerate(value.float()):
                out[f"{name}/{names[i] if names else i}"] = v
        else:
            raise ConfigError(
                f"model.metrics.{name} computes {type(value).__name__} "
                f"{tuple(getattr(value, 'shape', ()))}, which is not a scalar or a per-class "
                "vector; use a metric that reduces to numbers"
            )
    return out
