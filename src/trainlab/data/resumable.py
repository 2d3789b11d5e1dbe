"""DataLoaders that resume exactly, with any number of workers.

A run resumed from a checkpoint equals an uninterrupted one only if every epoch reads the same
batches in the same order, the interrupted epoch too, from the batch after the last one trained
on. A plain ``DataLoader(shuffle=True)`` draws its order from the global random state when its
iterator is made, and keeps no position: resumed, it starts the epoch over in another order.

:class:`ResumableSampler` draws the order from ``(seed, epoch)`` alone (it is Lightning's own
choice under DDP, ``DistributedSampler``, on one process as on many) and skips what was trained
on; :class:`ResumableLoader` counts the batches it handed out and saves that count in every
checkpoint (Lightning saves the state of a loader that has ``state_dict``). Batches come from
workers in sampler order, so the data of a step does not depend on ``num_workers``: a run
resumed with another number of workers reads the same batches.

:func:`resumable` gives a plain ``DataLoader`` (a forker's ``train_dataloader`` written the
Lightning-docs way) this sampler, and names the loaders it cannot make exact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
)

log = logging.getLogger(__name__)


def run_seed() -> int:
    """The seed of this run (``seed_everything``'s), as the in-memory loaders use it."""
    return int(torch.initial_seed()) % 2**31


class ResumableSampler(DistributedSampler):
    """Indices in an order that depends on ``(seed, epoch)`` alone: this rank's share of them
    under DDP (every ``world_size``-th, padded so that all ranks take as many steps), and after
    a resume mid-epoch, those after the ``start`` already trained on.

    Lightning calls ``set_epoch`` every epoch, and leaves a ``DistributedSampler`` in place
    under DDP. With ``with_epoch``, it yields ``(epoch, index)``: a dataset that augments draws
    from them, so that an image's augmentation does not depend on the worker that reads it.
    """

    def __init__(
        self,
        dataset: Any,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        with_epoch: bool = False,
    ) -> None:
        super().__init__(
            dataset,
            num_replicas=world_size,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.start = 0  # samples of this epoch's share to skip, once (set on resume)
        self.with_epoch = with_epoch

    def __iter__(self) -> Iterator[Any]:
        start, self.start = self.start, 0
        indices = list(super().__iter__())[start:]
        if self.with_epoch:
            return iter([(self.epoch, i) for i in indices])
        return iter(indices)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a :class:`ResumableSampler` that saves, in every checkpoint, the
    epoch and how many of its batches it handed out, and continues after them when resumed.

    Lightning fetches no batch ahead from a loader whose length it knows, so a batch handed out
    is one trained on. Nothing is read before the first batch is asked for, when Lightning has
    set the epoch: a loader with workers that made its iterator at once would draw the first
    epoch after a resume in epoch 0's order (Lightning #21938). Each epoch's workers are seeded
    from ``(seed, epoch)``, not from the global random state, which training draws from.
    """

    sampler: ResumableSampler

    def __init__(self, dataset: Any, batch_size: int, sampler: ResumableSampler, **kwargs: Any):
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
        self._served = 0  # batches handed out in this pass ...
        self._served_epoch = -1  # ... of this epoch
        self._resume: dict[str, int] | None = None

    @classmethod
    def over(
        cls,
        dataset: Any,
        batch_size: int,
        shuffle: bool,
        trainer: Any,
        with_epoch: bool = False,
        **kwargs: Any,
    ) -> Any:
        """A loader of ``dataset`` seeded by this run, reading this rank's share under DDP
        (``trainer``'s rank and world size; none before a Trainer holds the DataModule)."""
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        sampler = ResumableSampler(dataset, shuffle, run_seed(), rank, world, with_epoch=with_epoch)
        return cls(dataset, batch_size, sampler, **kwargs)

    def state_dict(self) -> dict[str, int]:
        # Between two epochs (Lightning has set the next one), nothing of the next is trained.
        epoch = self.sampler.epoch
        return {"epoch": epoch, "trained": self._served if self._served_epoch == epoch else 0}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = {"epoch": int(state["epoch"]), "trained": int(state["trained"])}

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        resume, self._resume = self._resume, None
        epoch = self.sampler.epoch
        start = 0
        if resume is not None and resume["epoch"] == epoch:  # interrupted mid-epoch
            start = resume["trained"]
        self.sampler.start = start * int(self.batch_size or 1)
        self.generator = torch.Generator().manual_seed(self.sampler.seed * 1_000_003 + epoch)
        self._served, self._served_epoch = start, epoch
        for batch in super().__iter__():
            self._served += 1
            yield batch


def convertible(loader: Any) -> str | None:
    """Why :func:`resumable` cannot rebuild ``loader`` exactly, or None when it can."""
    if isinstance(loader, ResumableLoader):
        return None
    if type(loader) is not DataLoader:
        kind = type(loader)
        return f"a {kind.__module__}.{kind.__qualname__}, not a plain DataLoader"
    if isinstance(loader.dataset, IterableDataset):
        return "an IterableDataset (its order is its own)"
    if type(loader.batch_sampler) is not BatchSampler or loader.batch_size is None:
        return "a batch_sampler of its own"
    sampler = loader.sampler
    if type(sampler) is RandomSampler:
        whole = sampler.num_samples == len(sampler.data_source)
        if sampler.replacement or not whole or sampler.generator is not None:
            return "a RandomSampler with replacement, num_samples or a generator"
        return None
    if type(sampler) is SequentialSampler:
        return None
    return f"a sampler of its own ({type(sampler).__name__})"


def resumable(loader: Any, seed: int, rank: int = 0, world_size: int = 1) -> Any:
    """``loader`` as a :class:`ResumableLoader` where it is a plain ``DataLoader`` with
    ``shuffle`` true or false: the same dataset, batch size, workers and collate function, the
    order drawn from ``(seed, epoch)``, as Lightning does under DDP. Any other loader is
    returned as it is (see :func:`convertible`)."""
    if isinstance(loader, ResumableLoader) or convertible(loader) is not None:
        return loader
    sampler = ResumableSampler(
        loader.dataset,
        shuffle=type(loader.sampler) is RandomSampler,
        seed=seed,
        rank=rank,
        world_size=world_size,
        drop_last=False,
    )
    return ResumableLoader(
        loader.dataset,
        batch_size=int(loader.batch_size),
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        prefetch_factor=loader.prefetch_factor,
        persistent_workers=loader.persistent_workers,
        pin_memory_device=loader.pin_memory_device,
        in_order=loader.in_order,
    )


def is_stateful(loader: Any) -> bool:
    """Whether Lightning saves and restores ``loader``'s position (it has both methods)."""
    return callable(getattr(loader, "state_dict", None)) and callable(
        getattr(loader, "load_state_dict", None)
    )


class ExactTrainLoader:
    """Stands in for a DataModule's ``train_dataloader`` during ``fit``: returns its loader,
    made resumable where it is a plain ``DataLoader`` (:func:`resumable`); a resumed run whose
    loader saves no position is told so once, naming it.

    Args:
        original: the DataModule's bound ``train_dataloader``.
        trainer: the Trainer (its rank, world size and whether it resumes).
    """

    def __init__(self, original: Callable[[], Any], trainer: Any) -> None:
        self.original = original
        self.__wrapped__ = original  # Lightning asks whether the DataModule overrides it
        self.trainer = trainer
        self.warned = False

    def __call__(self) -> Any:
        loader = resumable(
            self.original(), run_seed(), self.trainer.global_rank, self.trainer.world_size
        )
        if self.trainer.ckpt_path and not self.warned and not is_stateful(loader):
            owner = getattr(self.original, "__self__", None)
            name = f"{type(owner).__name__}.train_dataloader()"
            why = convertible(loader) or "it keeps no position"
            log.warning(
                "resuming: %s returns %s, which saves no position: the interrupted epoch "
                "starts over in another order, so this run will not equal an uninterrupted one. "
                "Return a plain DataLoader(shuffle=True) or a trainlab.data.ResumableLoader to "
                "resume exactly",
                name,
                why,
            )
            self.warned = True
        return loader
