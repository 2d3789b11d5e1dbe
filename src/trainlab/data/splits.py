"""Train/val/test splits shared by the DataModules: their checks and stratified indices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from trainlab.errors import ConfigError


def check_int(name: str, value: Any, least: int) -> int:
    """``data.<name>`` as an integer of at least ``least``, or a ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"data.{name} must be an integer >= {least}, got {value!r}")
    return value


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


def check_split(
    sizes: dict[str, int], train_classes: int | None, source: str, min_rows: int = 1
) -> None:
    """Every split holds at least ``min_rows`` rows, and a classification's training split at
    least two classes: else training would crash late (the linear baseline) or learn nothing.

    Raises:
        ConfigError: naming the source, the sizes of the splits and what to change.
    """
    shown = ", ".join(f"{name} {n}" for name, n in sizes.items())
    if min(sizes.values()) < min_rows:
        raise ConfigError(
            f"{source}: {sum(sizes.values())} rows are too few to split (train, val, test rows: "
            f"{shown}); add rows, or change data.val_fraction and data.test_fraction"
        )
    if train_classes is not None and train_classes < 2:
        raise ConfigError(
            f"{source}: the training split holds {train_classes} class (rows: {shown}); "
            "add rows of the other classes"
        )


def check_class_counts(labels: np.ndarray, names: Sequence[str] | None = None) -> None:
    """Each class has a row for each split (train, val, test): at least 3.

    Raises:
        ConfigError: naming the rarer classes (by ``names``, the class names in label order,
            where given) and their counts.
    """
    values, counts = np.unique(labels, return_counts=True)
    if (counts < 3).any():
        rare = ", ".join(
            f"{names[int(v)] if names is not None else v.item()!r} ({n})"
            for v, n in zip(values, counts, strict=True)
            if n < 3
        )
        raise ConfigError(
            f"classes with fewer than 3 rows: {rare}; each split (train, val, test) needs one "
            "of each class: add rows, or merge or drop those classes"
        )


def stratified_indices(
    labels: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Indices of the train, val and test splits, stratified by ``labels`` (in the order
    scikit-learn's ``train_test_split`` gives them); they depend only on ``seed``.

    Raises:
        ConfigError: a class has fewer than 3 rows (one for each split), named by ``names``
            (the class names in label order) where given.
    """
    check_class_counts(labels, names)
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
