"""The project's data: a DataModule as trainlab's own are written (load() returns arrays)."""

from __future__ import annotations

from typing import Any

import numpy as np
from trainlab.data.base import InMemoryDataModule, Loaded


class SpiralsDataModule(InMemoryDataModule):
    """Interleaved noisy spirals in the plane, one per class: a line cannot separate them.

    Args:
        classes: number of spirals (classes).
        samples: points per spiral.
        noise: standard deviation of the noise added to each point.
        turns: how many times each spiral winds around the origin.
        seed: seed of the generated points (the split has its own, ``split_seed``).
        **kwargs: split, batch and normalisation settings of ``InMemoryDataModule``.
    """

    def __init__(
        self,
        classes: int = 3,
        samples: int = 300,
        noise: float = 0.15,
        turns: float = 1.5,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if classes < 2 or samples < 10:
            raise ValueError(f"need classes >= 2 and samples >= 10, got {classes}, {samples}")
        self.classes, self.samples, self.noise, self.turns, self.seed = (
            classes,
            samples,
            noise,
            turns,
            seed,
        )

    def load(self) -> Loaded:
        rng = np.random.default_rng(self.seed)
        radius = np.linspace(0.1, 1.0, self.samples)
        xs, ys = [], []
        for k in range(self.classes):
            angle = 2 * np.pi * (self.turns * radius + k / self.classes)
            points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
            xs.append(points + self.noise * radius[:, None] * rng.standard_normal(points.shape))
            ys.append(np.full(self.samples, k))
        return Loaded(
            x=np.concatenate(xs).astype(np.float32),  # (N, 2)
            y=np.concatenate(ys).astype(np.int64),
            task="classification",
            modality="tabular",
            class_names=[f"spiral{k}" for k in range(self.classes)],
            feature_names=["x", "y"],
        )
