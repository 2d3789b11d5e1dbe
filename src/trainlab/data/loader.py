"""Batches sliced from in-memory tensors: no Dataset, no per-sample collate."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch


class EpochSampler:
    """Holds the epoch number; Lightning calls ``set_epoch`` on a loader's ``sampler`` each epoch.

    The shuffle order of an epoch depends only on ``(seed, epoch)``, so a resumed run sees the
    same batches it would have seen without the interruption.
    """

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class TensorBatches:
    """An iterable of ``(x, y)`` batches cut from two tensors that share their first dimension.

    Under data parallelism each rank reads every ``world_size``-th sample of the same epoch
    order, padded by wrapping around so that all ranks take the same number of steps
    (as ``DistributedSampler`` does).

    Args:
        x: inputs, ``(N, *input_shape)``.
        y: targets, ``(N,)`` or ``(N, T)``.
        batch_size: samples per batch.
        shuffle: draw a new order each epoch from ``(seed, epoch)``.
        seed: base seed of the shuffle.
        rank: this process's rank; ``world_size``: number of data-parallel ranks.
        drop_last: drop a last, smaller batch.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} != {len(y)}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.drop_last = drop_last
        # Lightning looks for these two attributes on any loader: ``sampler.set_epoch`` is
        # called every epoch; there is no batch sampler.
        self.sampler = EpochSampler()
        self.batch_sampler = None
        self._served = 0  # batches handed out in this pass ...
        self._served_epoch = -1  # ... of this epoch
        self._resume: dict[str, int] | None = None

    def _samples_per_rank(self) -> int:
        return math.ceil(len(self.x) / self.world_size)

    def __len__(self) -> int:
        n = self._samples_per_rank()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self) -> torch.Tensor | None:
        """Indices this rank reads this epoch, or None to read the tensors in place."""
        n = len(self.x)
        if not self.shuffle and self.world_size == 1:
            return None
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.sampler.epoch)
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        padded = self._samples_per_rank() * self.world_size
        if padded > n:
            order = torch.cat([order, order[: padded - n]])
        return order[self.rank :: self.world_size]

    # -- resuming mid-epoch (Lightning saves and loads a loader's state in checkpoints) ------
    def state_dict(self) -> dict[str, int]:
        """The epoch and how many of its batches were handed out, so that a run resumed from a
        checkpoint written mid-epoch continues with the next batch. (Lightning fetches no batch
        ahead from a loader whose length it knows, so handed out is trained on.)"""
        # Between two epochs (Lightning has set the next one), nothing of the next is trained.
        trained = self._served if self._served_epoch == self.sampler.epoch else 0
        return {"epoch": self.sampler.epoch, "trained": trained}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = {"epoch": int(state["epoch"]), "trained": int(state["trained"])}

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start, resume, self._resume = 0, self._resume, None
        if resume is not None and resume["epoch"] == self.sampler.epoch:
            start = resume["trained"]  # the same epoch, interrupted: skip what was trained on
        order = self._order()
        # One gather per epoch, then views: cheaper than indexing every batch.
        x, y = (self.x, self.y) if order is None else (self.x[order], self.y[order])
        self._served, self._served_epoch = start, self.sampler.epoch
        for i in range(start, len(self)):
            s = slice(i * self.batch_size, (i + 1) * self.batch_size)
            self._served = i + 1
            yield x[s], y[s]


class TensorSplits:
    """The loaders of a DataModule that holds each split as ``(x, y)`` tensors: mixed into the
    in-memory and the text DataModules, which give ``tensors(split)``, ``batch_size``,
    ``eval_batch_size`` and ``shuffle_seed``."""

    batch_size: int
    eval_batch_size: int
    shuffle_seed: int | None
    trainer: Any

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def loader(self, split: str, shuffle: bool, shard: bool = True) -> TensorBatches:
        """Batches of a split; with ``shard``, this process's share of them under DDP (a
        calibration or a prediction reads the whole split on every process)."""
        x, y = self.tensors(split)
        rank, world = 0, 1
        if shard and self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        seed = self.shuffle_seed
        if seed is None:
            seed = int(torch.initial_seed()) % 2**31
        return TensorBatches(
            x,
            y,
            self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            seed=seed,
            rank=rank,
            world_size=world,
        )

    def train_dataloader(self) -> TensorBatches:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> TensorBatches:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> TensorBatches:
        return self.loader("test", shuffle=False)

    def predict_dataloader(self) -> TensorBatches:
        return self.loader("test", shuffle=False)
