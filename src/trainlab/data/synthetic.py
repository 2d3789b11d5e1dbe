"""Sequence tasks with a known answer, generated (no download): they show which nets carry
information across many time steps."""

from __future__ import annotations

from typing import Any

import numpy as np

from trainlab.data.base import InMemoryDataModule, Loaded
from trainlab.errors import ConfigError

PROBLEMS = ("adding", "recall")


class LongRangeDataModule(InMemoryDataModule):
    """Generated sequences of ``length`` steps whose answer depends on steps far apart.

    ``adding`` (Hochreiter & Schmidhuber, 1997): two channels, a value drawn from U(0, 1) and a
    marker; one step in each half of the sequence is marked, and the target is the sum of the
    two marked values. Predicting the mean (1.0) gives an MSE of 1/6 (0.167): a net below that
    has learned to carry the values.

    ``recall``: the first step holds one of ``classes`` symbols (one-hot), every later step
    noise; the label is that symbol. Chance is ``1 / classes``.

    Args:
        problem: ``adding`` (regression) or ``recall`` (classification).
        length: time steps per sequence.
        samples: sequences generated (split as any in-memory data).
        classes: symbols of the recall task.
        seed: seed of the generator (the data, not the training).
        **kwargs: split, batch and normalisation settings of :class:`InMemoryDataModule`.

    Raises:
        ConfigError: an unknown task or a setting out of range.
    """

    def __init__(
        self,
        problem: str = "adding",
        length: int = 100,
        samples: int = 10000,
        classes: int = 8,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if problem not in PROBLEMS:
            raise ConfigError(f"data.problem {problem!r} is unknown; use one of {PROBLEMS}")
        for name, value, least in (
            ("length", length, 2),
            ("samples", samples, 10),
            ("classes", classes, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"data.{name} must be an integer >= {least}, got {value!r}")
        self.problem, self.length, self.samples = problem, length, samples
        self.classes, self.seed = classes, seed

    def load(self) -> Loaded:
        rng = np.random.default_rng(self.seed)
        n, t = self.samples, self.length
        if self.problem == "adding":
            values = rng.uniform(0.0, 1.0, size=(n, t))
            first = rng.integers(0, t // 2, size=n)  # one marked step in each half
            second = rng.integers(t // 2, t, size=n)
            markers = np.zeros((n, t))
            rows = np.arange(n)
            markers[rows, first] = markers[rows, second] = 1.0
            x = np.stack([values, markers], axis=2).astype(np.float32)  # (N, T, 2)
            y = values[rows, first] + values[rows, second]
            return Loaded(
                x=x, y=y, task="regression", modality="sequence", feature_names=["value", "marker"]
            )
        labels = rng.integers(0, self.classes, size=n)
        x = rng.normal(0.0, 1.0, size=(n, t, self.classes)).astype(np.float32)
        x[:, 0, :] = 0.0
        x[np.arange(n), 0, labels] = 1.0  # (N, T, classes): the symbol, then noise
        return Loaded(
            x=x,
            y=labels,
            task="classification",
            modality="sequence",
            class_names=[f"symbol_{i}" for i in range(self.classes)],
        )
