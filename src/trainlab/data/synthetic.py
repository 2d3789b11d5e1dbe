"""Sequence tasks with a known answer, generated (no download): they show which nets carry
information across many time steps."""

from __future__ import annotations

from typing import Any

import numpy as np

from trainlab.data.base import InMemoryDataModule, Loaded
from trainlab.data.splits import check_int
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
            check_int(name, value, least)
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


class SignalsDataModule(InMemoryDataModule):
    """1-D signals: ``classes`` smooth templates, each placed at a random offset in a sequence of
    ``length`` steps, scaled, sheared and noised. The class is the template's shape, wherever it
    lies, so a net that shares weights along time (a temporal convolution) reads it with far
    fewer samples than one that sees each position apart (an MLP); ``data.permute=true`` takes
    that advantage away.

    Each template is a sum of ``bumps`` Gaussian bumps of random sign, width and place, drawn
    from a generator of its own (``template_seed``): the classes stay the same whatever the
    ``seed`` of the samples.

    Args:
        samples: sequences generated (as many of each class).
        length: time steps per sequence.
        template_length: steps of a template (at most ``length``).
        classes: templates.
        noise: standard deviation of the white noise added to every step.
        bumps: bumps per template.
        template_seed: seed of the templates (the classes).
        seed: seed of the samples (offsets, scales, noise).
        **kwargs: split, batch and normalisation settings of :class:`InMemoryDataModule`.

    Raises:
        ConfigError: a setting out of range.
    """

    def __init__(
        self,
        samples: int = 5000,
        length: int = 64,
        template_length: int = 20,
        classes: int = 10,
        noise: float = 0.3,
        bumps: int = 3,
        template_seed: int = 0,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value, least in (
            ("samples", samples, 10),
            ("length", length, 2),
            ("template_length", template_length, 2),
            ("classes", classes, 2),
            ("bumps", bumps, 1),
        ):
            check_int(name, value, least)
        if template_length > length:
            raise ConfigError(
                f"data.template_length ({template_length}) must be at most data.length ({length})"
            )
        if not noise >= 0:
            raise ConfigError(f"data.noise must be >= 0, got {noise!r}")
        self.samples, self.length, self.template_length = samples, length, template_length
        self.classes, self.noise, self.bumps = classes, float(noise), bumps
        self.template_seed, self.seed = template_seed, seed

    def templates(self) -> np.ndarray:
        """``(classes, template_length)`` templates, each scaled to unit peak."""
        rng = np.random.default_rng(self.template_seed)
        t = np.arange(self.template_length)
        shapes = np.zeros((self.classes, self.template_length))
        for shape in shapes:
            for _ in range(self.bumps):
                centre = rng.uniform(0, self.template_length)
                width = rng.uniform(1.0, self.template_length / 4)
                shape += rng.choice([-1.0, 1.0]) * np.exp(-0.5 * ((t - centre) / width) ** 2)
            shape /= np.abs(shape).max()
        return shapes

    def load(self) -> Loaded:
        rng = np.random.default_rng(self.seed)
        shapes = self.templates()
        labels = np.arange(self.samples) % self.classes
        rng.shuffle(labels)
        x = self.noise * rng.normal(size=(self.samples, self.length))
        offsets = rng.integers(0, self.length - self.template_length + 1, size=self.samples)
        scales = rng.uniform(0.7, 1.3, size=self.samples)
        shears = rng.uniform(-0.3, 0.3, size=self.samples)
        ramp = np.linspace(-1.0, 1.0, self.template_length)
        for i, (label, start) in enumerate(zip(labels, offsets, strict=True)):
            stretch = scales[i] * (1.0 + shears[i] * ramp)  # a slope across the template
            x[i, start : start + self.template_length] += stretch * shapes[label]
        return Loaded(
            x=x[:, :, None].astype(np.float32),  # (N, T, 1)
            y=labels.astype(np.int64),
            task="classification",
            modality="sequence",
            class_names=[f"template{k}" for k in range(self.classes)],
        )
