"""The user's own tabular data from a CSV file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainlab.data.base import InMemoryDataModule, Loaded
from trainlab.data.tables import infer_task, numeric_features, read_table
from trainlab.errors import ConfigError

TASKS = ("auto", "classification", "regression")


class CSVDataModule(InMemoryDataModule):
    """Reads features and a target column from a CSV file.

    Class labels may be text or numbers; they are mapped to indices in sorted order and the
    mapping is kept as ``class_names`` (saved with the run and the checkpoint).

    Args:
        path: the CSV file.
        target: name of the target column.
        features: feature columns; by default every column but the target and ``exclude``.
        exclude: columns that are not features (an ID column, a date), when ``features`` is
            not given.
        task: ``classification``, ``regression`` or ``auto`` (text, or at most 20 integer
            values, means classification).
        delimiter: the field separator.
        **kwargs: split, batch and normalisation settings of :class:`InMemoryDataModule`.

    Raises:
        ConfigError: a missing file or column, non-numeric or missing feature values, or an
            unknown task.
    """

    def __init__(
        self,
        path: str,
        target: str,
        features: list[str] | None = None,
        exclude: list[str] | None = None,
        task: str = "auto",
        delimiter: str = ",",
        encoding: str = "utf-8",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if task not in TASKS:
            raise ConfigError(f"data.task {task!r} is unknown; use one of {TASKS}")
        if not path:
            raise ConfigError("data.path is not set: give the CSV file, e.g. data.path=my.csv")
        self.path = Path(path)
        self.target = target
        self.features = list(features) if features is not None else None
        self.exclude = list(exclude) if exclude is not None else []
        if self.features is not None and self.exclude:
            raise ConfigError("give data.features or data.exclude, not both")
        self.task_setting = task
        self.delimiter, self.encoding = delimiter, encoding

    def load(self) -> Loaded:
        if not self.path.is_file():
            raise ConfigError(f"data.path: file {str(self.path)!r} does not exist")
        frame = read_table(self.path, sep=self.delimiter, encoding=self.encoding)
        columns = [str(c) for c in frame.columns]
        if self.target not in columns:
            raise ConfigError(
                f"data.target: column {self.target!r} is not in {self.path}; columns: {columns}"
            )
        if unknown := [c for c in self.exclude if c not in columns]:
            raise ConfigError(
                f"data.exclude: columns {unknown} are not in {self.path}; columns: {columns}"
            )
        left_out = {self.target, *self.exclude}
        features = (
            self.features
            if self.features is not None
            else [c for c in columns if c not in left_out]
        )
        unknown = [c for c in features if c not in columns]
        if unknown:
            raise ConfigError(
                f"data.features: columns {unknown} are not in {self.path}; columns: {columns}"
            )
        if self.target in features:
            raise ConfigError(f"data.features must not include the target column {self.target!r}")
        if not features:
            raise ConfigError(
                f"data.features: {self.path} has no feature columns besides the target"
            )
        x = numeric_features(
            frame[features],
            self.path,
            "; encode them as numbers, or leave them out with data.exclude=[...]",
        )
        target = frame[self.target]
        if target.isna().any():
            raise ConfigError(
                f"{self.path}: target column {self.target!r} has "
                f"{int(target.isna().sum())} missing values"
            )
        task = infer_task(target) if self.task_setting == "auto" else self.task_setting
        if task == "regression":
            if not pd.api.types.is_numeric_dtype(target):
                raise ConfigError(
                    f"data.task=regression needs a numeric target; {self.target!r} holds text"
                )
            return Loaded(
                x=x,
                y=target.to_numpy(dtype=np.float64),
                task=task,
                modality="tabular",
                feature_names=features,
            )
        classes = sorted(target.unique().tolist())
        if len(classes) < 2:
            raise ConfigError(
                f"{self.path}: target {self.target!r} has a single class {classes}; "
                "need two or more"
            )
        index = {c: i for i, c in enumerate(classes)}
        y = target.map(index).to_numpy(dtype=np.int64)
        return Loaded(
            x=x,
            y=y,
            task=task,
            modality="tabular",
            class_names=[str(c) for c in classes],
            feature_names=features,
        )
