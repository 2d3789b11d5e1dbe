"""The small datasets bundled with scikit-learn: offline, instant, and enough to teach with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import datasets

from trainlab.data.base import InMemoryDataModule, Loaded
from trainlab.errors import ConfigError

LOADERS: dict[str, Callable[..., Any]] = {
    "digits": datasets.load_digits,
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "diabetes": datasets.load_diabetes,
}
REGRESSION = {"diabetes"}
LAYOUTS = ("tabular", "image", "sequence")


class SklearnDataModule(InMemoryDataModule):
    """One of scikit-learn's bundled datasets.

    Args:
        dataset: ``digits``, ``iris``, ``wine``, ``breast_cancer`` or ``diabetes`` (regression).
        layout: ``tabular`` (a feature vector), or for ``digits`` also ``image`` (1x8x8) or
            ``sequence`` (8 time steps of 8 features: the image read row by row).
        **kwargs: split, batch and normalisation settings of :class:`InMemoryDataModule`.

    Raises:
        ConfigError: unknown dataset or layout.
    """

    def __init__(self, dataset: str = "digits", layout: str = "tabular", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if dataset not in LOADERS:
            raise ConfigError(f"data.dataset {dataset!r} is unknown; use one of {sorted(LOADERS)}")
        if layout not in LAYOUTS:
            raise ConfigError(f"data.layout {layout!r} is unknown; use one of {LAYOUTS}")
        if layout != "tabular" and dataset != "digits":
            raise ConfigError(
                f"data.layout={layout} needs dataset=digits; {dataset} is tabular only"
            )
        self.dataset = dataset
        self.layout = layout

    def load(self) -> Loaded:
        bunch = LOADERS[self.dataset]()
        x = np.asarray(bunch.data, dtype=np.float32)
        if self.layout == "image":
            x = x.reshape(-1, 1, 8, 8)  # (N, C, H, W)
        elif self.layout == "sequence":
            x = x.reshape(-1, 8, 8)  # (N, T, F): rows are time steps
        if self.dataset in REGRESSION:
            return Loaded(
                x=x,
                y=np.asarray(bunch.target, dtype=np.float64),
                task="regression",
                modality=self.layout,
                feature_names=list(bunch.feature_names),
            )
        return Loaded(
            x=x,
            y=np.asarray(bunch.target, dtype=np.int64),
            task="classification",
            modality=self.layout,
            class_names=[str(c) for c in bunch.target_names],
            feature_names=[str(f) for f in getattr(bunch, "feature_names", [])] or None,
        )
