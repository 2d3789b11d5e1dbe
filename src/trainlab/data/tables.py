"""A user's table: read with one clear error for each way it can be unusable, its features
checked, its task inferred. The CSV DataModule, text data, ``trainlab.pack`` and ``predict``
over a CSV file all read tables this way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trainlab.errors import ConfigError

MAX_AUTO_CLASSES = 20


def read_table(path: Path | str, sep: str = ",", encoding: str = "utf-8") -> pd.DataFrame:
    """A user's CSV file, with one clear error for each way it can be unusable.

    Raises:
        ConfigError: naming ``data.path`` and the file: empty, a header and no rows, not text
            in ``encoding`` (naming the byte), or not CSV.
    """
    try:
        frame = pd.read_csv(path, sep=sep, encoding=encoding)
    except pd.errors.EmptyDataError as err:
        raise ConfigError(f"data.path: {path} is empty") from err
    except UnicodeDecodeError as err:
        bad = err.object[err.start : err.start + 1].hex()
        raise ConfigError(
            f"data.path: {path} is not {encoding} text (byte 0x{bad} at offset {err.start}); "
            "give its encoding, e.g. data.encoding=latin-1"
        ) from err
    except LookupError as err:
        raise ConfigError(f"data.encoding {encoding!r} is not an encoding Python knows") from err
    except pd.errors.ParserError as err:
        raise ConfigError(f"data.path: cannot read {path} as CSV: {err}") from err
    if frame.empty:
        raise ConfigError(f"data.path: {path} has a header ({list(frame.columns)}) but no rows")
    return frame


def numeric_features(frame: pd.DataFrame, source: Path | str, hint: str = "") -> np.ndarray:
    """The feature columns of ``frame`` as float32, after checking they are numeric and complete.

    Raises:
        ConfigError: naming ``source`` and the non-numeric columns, or the columns with gaps.
    """
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise ConfigError(f"{source}: feature columns {bad} are not numeric{hint}")
    nan_cols = {c: int(n) for c, n in frame.isna().sum().items() if n}
    if nan_cols:
        raise ConfigError(f"{source}: missing values in columns {nan_cols} (column: count)")
    return frame.to_numpy(dtype=np.float32)


def infer_task(target: pd.Series) -> str:
    """``classification`` for text, boolean or few integer values; else ``regression``."""
    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return "classification"
    values = target.to_numpy(dtype=np.float64)
    integral = bool(np.all(np.mod(values, 1) == 0))
    return "classification" if integral and target.nunique() <= MAX_AUTO_CLASSES else "regression"
