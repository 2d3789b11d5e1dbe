"""Images on disk, one folder per class, read lazily by DataLoader workers (Pillow; no
torchvision). A plain LightningDataModule: the example of data that need not fit in memory."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import Dataset

from trainlab.data.resumable import ResumableLoader, run_seed
from trainlab.data.splits import check_fractions, check_int, stratified_indices
from trainlab.errors import ConfigError, DataError
from trainlab.trust.data import listing

log = logging.getLogger(__name__)
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
CHANNELS = {1: "L", 3: "RGB"}


@dataclass(frozen=True)
class Augment:
    """Train-time augmentation, drawn anew for every image and epoch.

    Args:
        hflip: mirror left-right with probability 0.5 (not for digits or text).
        rotate: rotate by an angle drawn from [-rotate, rotate] degrees.
        translate: shift by up to this fraction of the width and height.
        noise: add Gaussian noise of this standard deviation (after normalisation).
    """

    hflip: bool = False
    rotate: float = 0.0
    translate: float = 0.0
    noise: float = 0.0

    @classmethod
    def from_config(cls, node: Any) -> Augment | None:
        """``data.augment`` as given in YAML (a mapping, or null for none)."""
        if node is None:
            return None
        known = [f.name for f in fields(cls)]
        if unknown := sorted(set(map(str, node)) - set(known)):
            raise ConfigError(f"data.augment: unknown key(s) {unknown}; valid keys: {known}")
        augment = cls(**{str(k): v for k, v in node.items()})
        for name, low, high in (("rotate", 0, 180), ("translate", 0, 0.5), ("noise", 0, math.inf)):
            value = getattr(augment, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"data.augment.{name} must be a number, got {value!r}")
            if not low <= value <= high:
                raise ConfigError(f"data.augment.{name} must be in [{low}, {high}], got {value}")
        if not isinstance(augment.hflip, bool):
            raise ConfigError(f"data.augment.hflip must be true or false, got {augment.hflip!r}")
        return augment

    def __call__(self, image: Any, generator: torch.Generator | None = None) -> Any:
        """Transform a PIL image, drawing from ``generator`` (by default torch's)."""
        from PIL import Image

        if self.hflip and torch.rand((), generator=generator) < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.rotate or self.translate:
            angle = float(torch.empty(()).uniform_(-self.rotate, self.rotate, generator=generator))
            dx, dy = (
                torch.empty(2).uniform_(-self.translate, self.translate, generator=generator)
                * torch.tensor(image.size)
            ).tolist()
            image = image.rotate(angle, resample=Image.Resampling.BILINEAR, translate=(dx, dy))
        return image


BAD_IMAGES = ("error", "skip")
CHECKED = 256  # images decoded at setup (all of a smaller folder); workers catch the rest


def unreadable(path: Path) -> str | None:
    """Why ``path`` is not an image PIL can decode (a cut-off or corrupt file, or another kind
    of file with an image's extension), or None."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception as err:  # PIL raises many kinds (OSError, SyntaxError, ValueError ...)
        return f"{type(err).__name__}: {err}"
    return None


def check_images(
    root: Path, names: np.ndarray, labels: np.ndarray, bad_images: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Decode up to :data:`CHECKED` images (a fixed pick) before training, so that a folder
    of files that are not images fails at once: an unreadable one fails the run with its path
    (``bad_images=error``), or is left out and counted (``skip``). The workers catch the
    others as they read them.

    Raises:
        ConfigError: naming the first unreadable file, and how many there are.
    """
    picked = np.sort(np.random.default_rng(seed).permutation(len(names))[:CHECKED])
    reasons = {int(i): unreadable(root / names[i].decode()) for i in picked}
    bad = [i for i, reason in reasons.items() if reason is not None]
    if not bad:
        return names, labels
    first = f"{root / names[bad[0]].decode()} ({reasons[bad[0]]})"
    of = f"{len(bad)} of {len(picked)} images"
    if len(picked) < len(names):
        of += f" checked at setup (of {len(names)})"
    if bad_images == "error":
        raise ConfigError(
            f"data.root: {of} cannot be read, first {first}; "
            "remove them, or give data.bad_images=skip to leave them out"
        )
    log.warning("data.bad_images=skip: left out %d unreadable images, first %s", len(bad), first)
    keep = np.setdiff1d(np.arange(len(names)), bad)
    return names[keep], labels[keep]


def find_images(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every image under ``root/<class>/`` as its path relative to ``root`` (UTF-8 bytes, one
    array: a million names cost megabytes, not Python objects that every worker would copy),
    its label, and the class names in sorted order.

    Raises:
        ConfigError: ``root`` is missing, has fewer than two class folders, or a class folder
            holds no image.
    """
    if not root.is_dir():
        raise ConfigError(f"data.root: {str(root)!r} is not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise ConfigError(
            f"data.root: {root} must hold one folder per class (root/<class>/*.png), found "
            f"{classes or 'none'}"
        )
    names: list[bytes] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = [  # in the order the split was always drawn in (see listing)
            f"{name}/{path}"
            for path, _ in listing(root / name)
            if os.path.splitext(path)[1].lower() in EXTENSIONS
        ]
        if not found:
            raise ConfigError(f"data.root: class folder {root / name} holds no image {EXTENSIONS}")
        names += [f.encode() for f in found]
        labels += [index] * len(found)
    return np.asarray(names, dtype=np.bytes_), np.asarray(labels, dtype=np.int64), classes


def read_image(path: Path | str, mode: str, size: tuple[int, int]) -> Any:
    """The image at ``path`` as a PIL image in ``mode`` (``L`` or ``RGB``), resized to
    ``size`` (height, width) where it differs. Raises what PIL raises for a bad file."""
    from PIL import Image

    with Image.open(path) as raw:
        image = raw.convert(mode)
    if image.size != size[::-1]:
        image = image.resize(size[::-1], Image.Resampling.BILINEAR)
    return image


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one image's augmentation in one epoch."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class ImageFiles(Dataset[tuple[Any, Any]]):
    """Reads, resizes, augments and normalises one image per item: ``(C, H, W)`` floats.

    An item is an index, or ``(epoch, index)`` from a :class:`ResumableSampler`: augmentation
    then draws from ``(seed, epoch, index)``, the same in any worker. An image that cannot be
    read gives ``(None, "<path> (<why>)")``, for :func:`collate_images` to set aside.
    """

    def __init__(
        self,
        root: Path,
        names: np.ndarray,
        labels: np.ndarray,
        size: tuple[int, int],
        channels: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        self.root, self.names, self.labels = root, names, labels
        self.size, self.mode = size, CHANNELS[channels]
        self.mean, self.std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.names)

    def path(self, i: int) -> Path:
        return self.root / self.names[i].decode()

    def pixels(self, i: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Image ``i`` as ``(C, H, W)`` floats in [0, 1], augmented with ``generator``."""
        image = read_image(self.path(i), self.mode, self.size)
        if generator is not None and self.augment is not None:
            image = self.augment(image, generator)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)  # (H, W[, C])
        return x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Any, Any]:
        epoch, i = item if isinstance(item, tuple) else (0, item)
        generator = None
        if self.augment is not None:
            generator = torch.Generator().manual_seed(sample_seed(self.seed, epoch, i))
        try:
            x = (self.pixels(i, generator) - self.mean) / self.std
        except Exception as err:  # PIL raises many kinds; the main process decides
            return None, f"{self.path(i)} ({type(err).__name__}: {err})"
        if self.augment is not None and self.augment.noise:
            x = x + self.augment.noise * torch.randn(x.shape, generator=generator)
        return x, int(self.labels[i])


def collate_images(samples: list[tuple[Any, Any]]) -> tuple[Any, torch.Tensor, list[str]]:
    """``(x, y, unreadable)``: the readable images stacked, their labels, and the others."""
    good = [(x, y) for x, y in samples if x is not None]
    bad = [str(why) for x, why in samples if x is None]
    x = torch.stack([x for x, _ in good]) if good else None
    return x, torch.tensor([y for _, y in good], dtype=torch.int64), bad


class ImageLoader(ResumableLoader):
    """Batches of images ``(x, y)``; an image the workers could not read fails the run naming
    it (``bad_images=error``) or is left out of its batch and named once (``skip``)."""

    def __init__(
        self, *args: Any, bad_images: str = "error", left_out: set[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, collate_fn=collate_images, **kwargs)
        self.bad_images = bad_images
        self.left_out = left_out if left_out is not None else set()  # the DataModule's, shared

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        for x, y, bad in super().__iter__():
            if bad and self.bad_images == "error":
                raise DataError(
                    f"data.root: cannot read image {bad[0]}; remove it, or give "
                    "data.bad_images=skip to leave unreadable images out"
                )
            for why in set(bad) - self.left_out:
                self.left_out.add(why)
                log.warning(
                    "data.bad_images=skip: left out %s; %d unreadable image(s) so far",
                    why,
                    len(self.left_out),
                )
            if x is not None:
                yield x, y


class ImageFolderDataModule(pl.LightningDataModule):
    """Classify images stored as ``root/<class>/<any name>.png|jpg|...``.

    The split is stratified and depends on ``split_seed`` alone; the per-channel mean and
    standard deviation come from (up to ``stats_images``) training images. Setup lists the
    files and decodes a sample of them (no full read: a folder of a million images starts in
    seconds); images are read in ``num_workers`` DataLoader worker processes, in an order and
    with augmentation drawn from the seed, the epoch and the image alone, so that a run resumes
    exactly, with any number of workers. Augmentation applies to the training split.

    Args:
        root: the folder of class folders.
        image_size: ``[height, width]`` every image is resized to; default the first image's.
        channels: 1 (grayscale) or 3 (RGB).
        augment: train-time augmentation (:class:`Augment`'s keys), or null.
        batch_size: training batch size; ``eval_batch_size`` for val/test/predict.
        val_fraction, test_fraction: shares held out for validation and testing.
        split_seed: seed of the split, independent of the training seed.
        num_workers: DataLoader worker processes (0 reads in the training process).
        stats_images: how many training images the normalisation statistics read.
        bad_images: ``error``: an image that cannot be read fails the run, naming it (at
            setup where it is among those checked, else when a worker reads it); ``skip``: it
            is left out, named once, and counted in the log.

    Raises:
        ConfigError: a bad setting, a missing folder, or a folder that is not a class tree.
    """

    def __init__(
        self,
        root: str,
        image_size: list[int] | None = None,
        channels: int = 1,
        augment: Any = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        num_workers: int = 2,
        stats_images: int = 2000,
        bad_images: str = "error",
    ) -> None:
        super().__init__()
        if bad_images not in BAD_IMAGES:
            raise ConfigError(f"data.bad_images must be one of {BAD_IMAGES}, got {bad_images!r}")
        self.bad_images = bad_images
        if channels not in CHANNELS:
            raise ConfigError(f"data.channels must be one of {sorted(CHANNELS)}, got {channels!r}")
        if image_size is not None and (
            len(image_size) != 2 or not all(isinstance(s, int) and s > 0 for s in image_size)
        ):
            raise ConfigError(f"data.image_size must be [height, width], got {image_size!r}")
        check_fractions(val_fraction, test_fraction)
        check_int("batch_size", batch_size, 1)
        check_int("num_workers", num_workers, 0)
        self.root = Path(root)
        self.image_size = tuple(image_size) if image_size is not None else None
        self.channels = channels
        self.augment = Augment.from_config(augment)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.stats_images = stats_images
        self.datasets: dict[str, ImageFiles] = {}
        self.left_out: set[str] = set()  # unreadable images the workers met (bad_images=skip)
        # What trainlab reads (the README's "Your own DataModule"); known after setup().
        self.task = "classification"
        self.modality = "image"
        self.class_names: list[str] | None = None
        self.input_shape: tuple[int, ...] | None = None
        self.num_outputs: int | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        names, labels, classes = find_images(self.root)
        names, labels = check_images(self.root, names, labels, self.bad_images, self.split_seed)
        indices = stratified_indices(labels, self.val_fraction, self.test_fraction, self.split_seed)
        if self.image_size is None:
            from PIL import Image

            with Image.open(self.root / names[0].decode()) as first:
                self.image_size = (first.height, first.width)
        size = (int(self.image_size[0]), int(self.image_size[1]))
        train = indices["train"]
        mean, std = self._statistics(names[train], labels[train], size)
        for split, rows in indices.items():
            augment = self.augment if split == "train" else None
            self.datasets[split] = ImageFiles(
                self.root, names[rows], labels[rows], size, self.channels, mean, std, augment
            )
        self.class_names = classes
        self.num_outputs = len(classes)
        self.input_shape = (self.channels, *size)

    def _statistics(
        self, names: np.ndarray, labels: np.ndarray, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std of up to ``stats_images`` readable training images (a
        fixed pick)."""
        raw = ImageFiles(
            self.root, names, labels, size, self.channels, torch.zeros(1), torch.ones(1)
        )
        pick = np.random.default_rng(self.split_seed).permutation(len(names))[: self.stats_images]
        read = [raw[int(i)][0] for i in pick]
        pixels = torch.stack([x for x in read if x is not None])  # (N, C, H, W)
        std = pixels.std(dim=(0, 2, 3))
        return pixels.mean(dim=(0, 2, 3)), torch.where(std > 0, std, torch.ones_like(std))

    def _loader(self, split: str, shuffle: bool) -> ImageLoader:
        dataset = self.datasets[split]
        dataset.seed = run_seed()  # augmentation draws from (seed, epoch, image)
        loader: ImageLoader = ImageLoader.over(
            dataset,
            self.batch_size if split == "train" else self.eval_batch_size,
            shuffle,
            self.trainer,
            with_epoch=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            bad_images=self.bad_images,
            left_out=self.left_out,
        )
        return loader

    def train_dataloader(self) -> ImageLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> ImageLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> ImageLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> ImageLoader:
        return self._loader("test", shuffle=False)
