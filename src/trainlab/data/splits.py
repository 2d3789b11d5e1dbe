"""Train/val/test splits shared by the DataModules: their checks and stratified indices."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from trainlab.errors import ConfigError


def check_fractions(val_fraction: float, test_fraction: float) -> tuple[float, float]:
    """``(val_fraction, test_fraction)`` as floats, each in (0, 1) and together below 1.

    Raises:
        ConfigError: naming the key and the value.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise ConfigError(f"data.{name} must be a number in (0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(
            "data.val_fraction + data.test_fraction must be < 1, "
            f"got {val_fraction} + {test_fraction}"
        )
    return float(val_fraction), float(test_fraction)


def stratified_indices(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Indices of the train, val and test splits, stratified by ``labels`` (in the order
    scikit-learn's ``train_test_split`` gives them); they depend only on ``seed``."""
    index = np.arange(len(labels))
    rest, test = train_test_split(
        index, test_size=test_fraction, random_state=seed, stratify=labels
    )
    train, val = train_test_split(
        rest,
        test_size=val_fraction / (1 - test_fraction),
        random_state=seed,
        stratify=labels[rest],
    )
    return {"train": train, "val": val, "test": test}
