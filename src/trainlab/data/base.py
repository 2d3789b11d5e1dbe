"""The base DataModule for datasets that fit in memory: split, normalise, serve tensor batches."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.model_selection import train_test_split

from trainlab.data.loader import TensorSplits
from trainlab.data.splits import check_class_counts, check_fractions, check_split
from trainlab.errors import ConfigError

TASKS = ("classification", "regression")
MODALITIES = ("tabular", "image", "sequence")
NORMALIZE = ("feature", "global", "none")
LEAKAGE = ("warn", "error", "ignore")
SPLITS = ("train", "val", "test")
log = logging.getLogger(__name__)


def count_shared_samples(splits: dict[str, np.ndarray]) -> dict[str, int]:
    """For each later split, how many of its samples equal (bytewise) a sample of an earlier
    one: ``{"train/val": 3, "train/test": 5, "val/test": 0}``."""
    seen: dict[str, set[bytes]] = {}
    counts = {}
    for name, x in splits.items():
        rows = [r.tobytes() for r in np.ascontiguousarray(x).reshape(len(x), -1)]
        for earlier, keys in seen.items():
            counts[f"{earlier}/{name}"] = sum(r in keys for r in rows)
        seen[name] = set(rows)
    return counts


@dataclass
class Loaded:
    """What a subclass's ``load`` returns.

    ``x`` is float, ``(N, *sample_shape)``; ``y`` holds class indices (classification) or
    values (regression). ``x_test``/``y_test`` are given where the dataset has a fixed test set.
    """

    x: np.ndarray
    y: np.ndarray
    task: str
    modality: str
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


class InMemoryDataModule(TensorSplits, pl.LightningDataModule):
    """Loads a whole dataset into tensors and serves batches sliced from them.

    Subclasses implement :meth:`load`. Splits are stratified for classification and depend only
    on ``split_seed`` (never the training seed); normalisation statistics come from the training
    split alone.

    Args:
        batch_size: training batch size.
        eval_batch_size: batch size for val/test/predict; defaults to ``batch_size``.
        val_fraction: share of the data (after the test split) held out for validation.
        test_fraction: share held out for testing; ignored where the dataset has a fixed test set.
        split_seed: seed of the split, independent of the training seed.
        normalize: ``"feature"`` (per-feature mean/std), ``"global"`` (one mean/std) or ``"none"``.
        shuffle_seed: seed of the training batch order; by default the global seed when set.
        leakage: what to do about inputs that appear in two splits (exact duplicates):
            ``warn`` (default), ``error``, or ``ignore``. The counts are in ``leakage_counts``.
        folds: k-fold cross-validation: with ``folds=k``, the data left after the test split
            is cut into k folds (stratified for classification) and fold ``fold`` is the
            validation split; ``val_fraction`` is then unused. The test split is held out of
            every fold. Sweep ``data.fold=0,1,...,k-1`` like seeds.
        fold: which fold validates, in ``[0, folds)``.
        permute: a control for what a net learns from order: one fixed permutation (drawn
            from ``split_seed``) of the positions of every sample, the time steps of a sequence
            or the pixels of an image (every channel alike), after normalisation. A net that
            reads order (a convolution, a recurrence) loses what it drew from it; an MLP, which
            sees every position alike, does not.

    Raises:
        ConfigError: a value is out of range.
    """

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        normalize: str = "feature",
        shuffle_seed: int | None = None,
        leakage: str = "warn",
        folds: int | None = None,
        fold: int = 0,
        permute: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(permute, bool):
            raise ConfigError(f"data.permute must be true or false, got {permute!r}")
        self.permute = permute
        self._permutation: np.ndarray | None = None
        if folds is not None and (
            isinstance(folds, bool) or not isinstance(folds, int) or folds < 2
        ):
            raise ConfigError(f"data.folds must be an integer >= 2 or null, got {folds!r}")
        if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < (folds or 1):
            valid = f"0..{folds - 1}" if folds else "0 (data.folds is not set)"
            raise ConfigError(f"data.fold must be one of {valid}, got {fold!r}")
        self.folds, self.fold = folds, fold
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise ConfigError(f"data.{name} must be a positive integer, got {value!r}")
        self.val_fraction, self.test_fraction = check_fractions(val_fraction, test_fraction)
        if normalize not in NORMALIZE:
            raise ConfigError(f"data.normalize {normalize!r} is unknown; use one of {NORMALIZE}")
        if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
            raise ConfigError(f"data.split_seed must be a non-negative integer, got {split_seed!r}")
        if leakage not in LEAKAGE:
            raise ConfigError(f"data.leakage {leakage!r} is unknown; use one of {LEAKAGE}")
        self.leakage = leakage
        self.leakage_counts: dict[str, int] = {}
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.split_seed = split_seed
        self.normalize = normalize
        self.shuffle_seed = shuffle_seed
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._meta: Loaded | None = None

    # -- to implement --------------------------------------------------------------------
    def load(self) -> Loaded:
        """Read the whole dataset into arrays."""
        raise NotImplementedError

    # -- what nets and tasks read ------------------------------------------------------
    @property
    def meta(self) -> Loaded:
        if self._meta is None:
            raise RuntimeError("call setup() before reading the data's shape, task or classes")
        return self._meta

    @property
    def task(self) -> str:
        return self.meta.task

    @property
    def modality(self) -> str:
        return self.meta.modality

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self._tensors["train"][0].shape[1:])

    @property
    def class_names(self) -> list[str] | None:
        return self.meta.class_names

    @property
    def feature_names(self) -> list[str] | None:
        return self.meta.feature_names

    @property
    def num_outputs(self) -> int:
        if self.task == "classification":
            assert self.class_names is not None
            return len(self.class_names)
        return 1

    @property
    def target_stats(self) -> tuple[float, float]:
        """Mean and std of the regression target on the training split (which standardises it)."""
        return self._target_mean, self._target_std

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised ``(x, y)`` tensors of a split."""
        if split not in SPLITS:
            raise ConfigError(f"split {split!r} is unknown; use one of {SPLITS}")
        return self._tensors[split]

    # -- Lightning hooks ------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._tensors:
            return
        meta = self.load()
        self._check_loaded(meta)
        self._meta = meta
        arrays = self._split(meta)
        self._check_leakage(arrays)
        self._fit_normalisation(arrays["train"][0])
        if self.permute:
            self._permutation = self._draw_permutation(meta)
        if meta.task == "regression":
            y_train = arrays["train"][1].astype(np.float64)
            self._target_mean = float(y_train.mean())
            self._target_std = float(y_train.std()) or 1.0
        for split, (x, y) in arrays.items():
            self._tensors[split] = (self.transform(x), self._target_tensor(y))

    def normalization(self) -> tuple[np.ndarray, np.ndarray]:
        """The fixed input normalisation fitted on the training split: ``(x - mean) / std``,
        with ``mean`` and ``std`` broadcastable over one sample (exports fold it in)."""
        return self._mean, self._std

    def transform(self, x: np.ndarray) -> torch.Tensor:
        """Normalise raw inputs ``(N, *sample_shape)`` with the training statistics."""
        z = (x.astype(np.float32) - self._mean) / self._std
        if self._permutation is not None:
            z = self._apply_permutation(z)
        return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))

    def _draw_permutation(self, meta: Loaded) -> np.ndarray:
        if meta.modality not in ("sequence", "image"):
            raise ConfigError(
                f"data.permute=true shuffles the positions of sequences or images; this data is "
                f"{meta.modality} (set data.permute=false)"
            )
        shape = meta.x.shape[1:]
        positions = shape[0] if meta.modality == "sequence" else int(np.prod(shape[1:]))
        return np.random.default_rng(self.split_seed).permutation(positions)

    def _apply_permutation(self, z: np.ndarray) -> np.ndarray:
        assert self._permutation is not None
        if self.modality == "sequence":  # (N, T, ...): the time steps
            return z[:, self._permutation]
        n, c = z.shape[:2]  # (N, C, H, W): the pixels, every channel alike
        return z.reshape(n, c, -1)[:, :, self._permutation].reshape(z.shape)

    def _target_tensor(self, y: np.ndarray) -> torch.Tensor:
        if self.task == "classification":
            return torch.from_numpy(y.astype(np.int64))
        z = (y.astype(np.float64) - self._target_mean) / self._target_std
        return torch.from_numpy(z.astype(np.float32)).reshape(-1, 1)

    # -- internals ------------------------------------------------------------------------
    def _check_loaded(self, meta: Loaded) -> None:
        if meta.task not in TASKS or meta.modality not in MODALITIES:
            raise ConfigError(f"unknown task {meta.task!r} or modality {meta.modality!r}")
        if len(meta.x) != len(meta.y):
            raise ConfigError(
                f"inputs and targets differ in length: {len(meta.x)} != {len(meta.y)}"
            )
        if not np.isfinite(meta.x).all():
            raise ConfigError("the inputs contain NaN or infinite values")
        if meta.task == "classification":
            if meta.class_names is None:
                raise ConfigError("a classification dataset must name its classes")
            k = len(meta.class_names)
            for y in (meta.y, meta.y_test):
                if y is None:
                    continue
                if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k:
                    raise ConfigError(
                        f"labels must be integers in [0, {k}) for {k} classes "
                        f"({', '.join(meta.class_names[:10])}); got values in "
                        f"[{y.min()}, {y.max()}] of dtype {y.dtype}"
                    )
        elif not np.isfinite(meta.y.astype(np.float64)).all():
            raise ConfigError("the regression targets contain NaN or infinite values")

    def _split(self, meta: Loaded) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        def cut(x: np.ndarray, y: np.ndarray, frac: float) -> list[np.ndarray]:
            stratify = y if meta.task == "classification" else None
            try:
                return train_test_split(
                    x, y, test_size=frac, random_state=self.split_seed, stratify=stratify
                )
            except ValueError:
                if stratify is None:
                    raise
                warnings.warn(
                    "a class has too few samples for a stratified split; splitting at random",
                    stacklevel=2,
                )
                return train_test_split(x, y, test_size=frac, random_state=self.split_seed)

        path = getattr(self, "path", None)
        source = f"data.path: {path}" if path else f"data ({type(self).__name__})"
        if meta.task == "classification":
            try:
                check_class_counts(meta.y, meta.class_names)
            except ConfigError as err:
                raise ConfigError(f"{source}: {err}") from err
        if meta.x_test is not None and meta.y_test is not None:
            x_test, y_test = meta.x_test, meta.y_test
            x_rest, y_rest = meta.x, meta.y
            val_frac = self.val_fraction
        else:
            x_rest, x_test, y_rest, y_test = cut(meta.x, meta.y, self.test_fraction)
            val_frac = self.val_fraction / (1.0 - self.test_fraction)
        if self.folds is not None:
            x_train, x_val, y_train, y_val = self._cut_fold(x_rest, y_rest, meta.task)
        else:
            x_train, x_val, y_train, y_val = cut(x_rest, y_rest, val_frac)
        check_split(
            {"train": len(y_train), "val": len(y_val), "test": len(y_test)},
            len(np.unique(y_train)) if meta.task == "classification" else None,
            source,
        )
        return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}

    def _cut_fold(self, x: np.ndarray, y: np.ndarray, task: str) -> list[np.ndarray]:
        """Fold ``self.fold`` of ``self.folds`` as validation, the others as training."""
        from sklearn.model_selection import KFold, StratifiedKFold

        assert self.folds is not None
        if task == "classification" and np.bincount(y).min() >= self.folds:
            splitter: Any = StratifiedKFold(self.folds, shuffle=True, random_state=self.split_seed)
        else:
            if task == "classification":
                warnings.warn(
                    f"a class has fewer than data.folds={self.folds} samples; folds are not "
                    "stratified",
                    stacklevel=2,
                )
            splitter = KFold(self.folds, shuffle=True, random_state=self.split_seed)
        if len(x) < self.folds:
            raise ConfigError(
                f"data.folds={self.folds} needs at least as many samples, got {len(x)}"
            )
        train, val = list(splitter.split(x, y))[self.fold]
        return [x[train], x[val], y[train], y[val]]

    def _check_leakage(self, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        if self.leakage == "ignore":
            return
        self.leakage_counts = count_shared_samples({s: x for s, (x, _) in arrays.items()})
        if not any(self.leakage_counts.values()):
            return
        message = (
            "data leakage: exact duplicate inputs across splits "
            + ", ".join(f"{n} {pair}" for pair, n in self.leakage_counts.items() if n)
            + " (samples of the second split that also occur in the first); their scores "
            "overstate generalization. Deduplicate the data, or set data.leakage=ignore."
        )
        if self.leakage == "error":
            raise ConfigError(message)
        log.warning(message)

    def _fit_normalisation(self, x_train: np.ndarray) -> None:
        x = x_train.astype(np.float64)
        if self.normalize == "feature":
            mean, std = x.mean(axis=0), x.std(axis=0)
            std[std == 0] = 1.0  # constant features (blank pixels) pass through centred
        elif self.normalize == "global":
            mean, std = np.asarray(x.mean()), np.asarray(x.std() or 1.0)
        else:
            mean, std = np.asarray(0.0), np.asarray(1.0)
        self._mean, self._std = mean.astype(np.float32), std.astype(np.float32)
