"""Packed data: an image folder or a CSV file as fixed-size rows in numpy ``.npy`` shards, read
a batch at a time, for data that does not fit in memory or decodes too slowly.

A packed folder holds ``meta.json`` (what the rows are: shape, dtype, classes, count, the
shards and their SHA-256), ``labels.npy`` and ``x-00000.npy`` ... Each shard is a plain
``.npy`` file whose header is read with ``np.load(mmap_mode="r", allow_pickle=False)``; rows
are read as a batch asks for them, through the page cache, which the operating system drops
under memory pressure, so an epoch over data larger than memory runs in bounded memory.
Nothing in the folder is unpickled.
``python -m trainlab.pack`` writes one (:mod:`trainlab.pack`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import Dataset

from trainlab.data.resumable import ResumableLoader
from trainlab.data.splits import check_fractions, check_int, check_split, stratified_indices
from trainlab.errors import ConfigError

FORMAT = "trainlab-packed"
VERSION = 1
META = "meta.json"
LABELS = "labels.npy"
KINDS = {"image": ("uint8", "image"), "tabular": ("float32", "tabular")}


def shard_name(index: int) -> str:
    return f"x-{index:05d}.npy"


def read_meta(path: Path) -> dict[str, Any]:
    """``meta.json`` of a packed folder, checked: the format, the kind, the shards.

    Raises:
        ConfigError: naming the folder and what is missing or does not fit.
    """
    meta_file = path / META
    if not meta_file.is_file():
        raise ConfigError(
            f"data.path: {path} is not a packed dataset (no {META}); write one with "
            "python -m trainlab.pack"
        )
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"data.path: cannot read {meta_file}: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ConfigError(f"data.path: {meta_file} is not a {FORMAT} description")
    if meta.get("version") != VERSION:
        raise ConfigError(
            f"data.path: {path} is packed in version {meta.get('version')!r}; this trainlab "
            f"reads version {VERSION}: pack it again"
        )
    if meta.get("kind") not in KINDS or meta.get("task") not in ("classification", "regression"):
        raise ConfigError(f"data.path: {meta_file} names an unknown kind or task")
    return meta


@dataclass(frozen=True)
class Shard:
    """Where a shard's rows start in its ``.npy`` file, and how many it holds."""

    path: str
    offset: int
    rows: int


def open_shards(path: Path, meta: dict[str, Any]) -> tuple[list[Shard], np.ndarray]:
    """The shards (their headers read and checked against ``meta.json``), and the labels.

    Raises:
        ConfigError: a shard missing, or of another shape or dtype than the description says.
    """
    dtype, _ = KINDS[meta["kind"]]
    shape = tuple(int(s) for s in meta["shape"])
    shards = []
    for entry in meta["shards"]:
        file = path / str(entry["file"])
        if file.name != entry["file"] or not file.is_file():
            raise ConfigError(f"data.path: shard {file} is missing")
        try:
            shard = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ConfigError(f"data.path: cannot read shard {file}: {err}") from err
        if shard.dtype != np.dtype(dtype) or shard.shape != (int(entry["rows"]), *shape):
            raise ConfigError(
                f"data.path: shard {file} holds {shard.dtype} rows of shape {shard.shape}; "
                f"{META} says {entry['rows']} rows of {dtype} {shape}"
            )
        shards.append(Shard(str(file), int(shard.offset), len(shard)))
    labels = np.load(path / LABELS, allow_pickle=False)
    if len(labels) != int(meta["count"]) or sum(s.rows for s in shards) != len(labels):
        raise ConfigError(
            f"data.path: {path} holds {sum(s.rows for s in shards)} rows and {len(labels)} "
            f"labels; {META} says {meta['count']}"
        )
    return shards, labels


class PackedRows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Normalised rows of a packed dataset: ``(x, y)``, one batch per read (``__getitems__``
    takes a batch's indices and reads them shard by shard, in file order).

    Rows are read with ``os.preadv`` into the batch, the shards opened once per process and
    marked for random access: a memory map reads ahead around every row it touches, and over
    3 GiB of data in a 1.5 GiB cgroup that kept the disk reading 1.2 GB/s for 3 MB batches.
    """

    def __init__(
        self,
        shards: list[Shard],
        shape: tuple[int, ...],
        dtype: str,
        labels: np.ndarray,
        rows: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        target: tuple[float, float] | None = None,
    ) -> None:
        self.shards, self.shape, self.dtype = shards, shape, np.dtype(dtype)
        self.labels, self.rows = labels, rows
        self.starts = np.cumsum([0] + [s.rows for s in shards])
        self.row_bytes = int(np.prod(shape)) * self.dtype.itemsize
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.target = target  # regression: (mean, std) that standardise it
        self._files: tuple[int, list[int]] = (-1, [])  # (process id, descriptors)

    def __len__(self) -> int:
        return len(self.rows)

    def _descriptors(self) -> list[int]:
        pid, fds = self._files
        if pid != os.getpid():  # a worker process opens its own
            fds = [os.open(s.path, os.O_RDONLY) for s in self.shards]
            for fd in fds:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            self._files = (os.getpid(), fds)
        return fds

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": (-1, [])}  # descriptors stay in their process

    def __del__(self) -> None:
        pid, fds = getattr(self, "_files", (-1, []))
        if pid == os.getpid():
            for fd in fds:
                os.close(fd)

    def raw(self, indices: np.ndarray) -> np.ndarray:
        """The stored rows of these items (``uint8`` pixels or ``float32`` features)."""
        rows = self.rows[indices]
        out = np.empty((len(rows), *self.shape), self.dtype)
        fds = self._descriptors()
        which = np.searchsorted(self.starts, rows, side="right") - 1
        for k in np.argsort(rows):  # front to back through the files
            shard = self.shards[which[k]]
            at = shard.offset + int(rows[k] - self.starts[which[k]]) * self.row_bytes
            if os.preadv(fds[which[k]], [memoryview(out[k]).cast("B")], at) != self.row_bytes:
                raise OSError(f"{shard.path}: cut off at row {rows[k]}")
        return out

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        x = (self.raw(index).astype(np.float32) - self.mean) / self.std
        y = self.labels[self.rows[index]]
        if self.target is None:
            return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
        z = (y.astype(np.float64) - self.target[0]) / self.target[1]
        return torch.from_numpy(x), torch.from_numpy(z.astype(np.float32)).reshape(-1, 1)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([i])
        return x[0], y[0]


def whole_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The collate function of :class:`PackedRows`, which reads a batch at once."""
    return batch


class PackedDataModule(pl.LightningDataModule):
    """Trains on a dataset packed by ``python -m trainlab.pack``: images (``uint8``, scaled to
    [0, 1] and normalised per channel) or tabular features (normalised per feature), with the
    statistics of up to ``stats_rows`` training rows.

    Splits are stratified for classification and depend on ``split_seed`` alone. Batches are
    read in an order drawn from the seed and the epoch
    (:class:`~trainlab.data.resumable.ResumableLoader`): a run resumes exactly, with any number
    of workers.

    Args:
        path: the packed folder.
        batch_size: training batch size; ``eval_batch_size`` for val/test/predict.
        val_fraction, test_fraction: shares held out for validation and testing.
        split_seed: seed of the split, independent of the training seed.
        num_workers: DataLoader worker processes; 0 (the default) reads in the training
            process, fastest where the rows are in memory or on a fast disk (reading a batch
            costs less than handing it over from a worker).
        stats_rows: how many training rows the normalisation statistics read.

    Raises:
        ConfigError: a bad setting, or a folder that is not a packed dataset.
    """

    def __init__(
        self,
        path: str,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        num_workers: int = 0,
        stats_rows: int = 10_000,
    ) -> None:
        super().__init__()
        check_fractions(val_fraction, test_fraction)
        check_int("batch_size", batch_size, 1)
        check_int("num_workers", num_workers, 0)
        check_int("stats_rows", stats_rows, 1)
        self.path = path
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.stats_rows = stats_rows
        self.datasets: dict[str, PackedRows] = {}
        # What trainlab reads (the README's "Your own DataModule"); known after setup().
        self.task = "classification"
        self.modality = "tabular"
        self.class_names: list[str] | None = None
        self.feature_names: list[str] | None = None
        self.input_shape: tuple[int, ...] | None = None
        self.num_outputs: int | None = None
        self.target_stats: tuple[float, float] = (0.0, 1.0)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        folder = Path(self.path)
        meta = read_meta(folder)
        shards, labels = open_shards(folder, meta)
        shape, dtype = tuple(int(s) for s in meta["shape"]), KINDS[meta["kind"]][0]
        self.task, self.modality = meta["task"], KINDS[meta["kind"]][1]
        self.class_names = meta.get("class_names")
        self.feature_names = meta.get("feature_names")
        if self.task == "classification":
            indices = stratified_indices(
                labels, self.val_fraction, self.test_fraction, self.split_seed, self.class_names
            )
        else:
            order = np.random.default_rng(self.split_seed).permutation(len(labels))
            n_test, n_val = (
                round(len(labels) * f) for f in (self.test_fraction, self.val_fraction)
            )
            test, val, train = np.split(order, [n_test, n_test + n_val])
            indices = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
        classes = len(self.class_names or []) or None
        check_split({k: len(v) for k, v in indices.items()}, classes, f"data.path: {folder}")
        target = None
        if self.task == "regression":
            train_y = labels[indices["train"]].astype(np.float64)
            self.target_stats = (float(train_y.mean()), float(train_y.std()) or 1.0)
            target = self.target_stats
        unit = np.zeros(1, np.float32), np.ones(1, np.float32)
        raw = PackedRows(shards, shape, dtype, labels, indices["train"], *unit)
        mean, std = self._statistics(raw)
        for split, rows in indices.items():
            self.datasets[split] = PackedRows(shards, shape, dtype, labels, rows, mean, std, target)
        self.input_shape = shape
        self.num_outputs = len(self.class_names) if self.class_names else 1

    def _statistics(self, rows: PackedRows) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of up to ``stats_rows`` of ``rows`` (the training split, unnormalised;
        a fixed pick), in stored units: per channel for images, per feature for tables. Summed
        1,000 rows at a time: memory stays bounded whatever the row size."""
        pick = np.random.default_rng(self.split_seed).permutation(len(rows))[: self.stats_rows]
        pick = np.sort(pick)  # read front to back
        image = len(rows.shape) == 3
        axes = (0, 2, 3) if image else (0,)
        count, total, squares = 0, 0.0, 0.0
        for start in range(0, len(pick), 1000):
            chunk = rows.raw(pick[start : start + 1000]).astype(np.float64)
            count += chunk.size // (chunk.shape[1] if image else chunk.shape[-1])
            total = total + chunk.sum(axis=axes)
            squares = squares + (chunk**2).sum(axis=axes)
        mean = np.asarray(total / count)
        std = np.sqrt(np.maximum(np.asarray(squares / count) - mean**2, 0.0))
        std[std == 0] = 1.0  # constant channels or features pass through centred
        if image:  # broadcast over (C, H, W)
            mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        return mean.astype(np.float32), std.astype(np.float32)

    def normalization(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` in the stored units (pixel values 0-255, or the features'): an
        exported model takes the raw rows."""
        train = self.datasets["train"]
        return train.mean, train.std

    def _loader(self, split: str, shuffle: bool) -> ResumableLoader:
        loader: ResumableLoader = ResumableLoader.over(
            self.datasets[split],
            self.batch_size if split == "train" else self.eval_batch_size,
            shuffle,
            self.trainer,
            collate_fn=whole_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
        return loader

    def train_dataloader(self) -> ResumableLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> ResumableLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> ResumableLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> ResumableLoader:
        return self._loader("test", shuffle=False)
