"""Images on disk, one folder per class, read lazily by DataLoader workers (Pillow; no
torchvision). A plain LightningDataModule: the example of data that need not fit in memory."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainlab.data.splits import check_fractions, stratified_indices
from trainlab.errors import ConfigError

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

    def __call__(self, image: Any) -> Any:
        """Transform a PIL image with this process's torch random generator (seeded per
        worker by Lightning's ``seed_everything(workers=True)``)."""
        from PIL import Image

        if self.hflip and torch.rand(()) < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.rotate or self.translate:
            angle = float(torch.empty(()).uniform_(-self.rotate, self.rotate))
            dx, dy = (
                torch.empty(2).uniform_(-self.translate, self.translate) * torch.tensor(image.size)
            ).tolist()
            image = image.rotate(angle, resample=Image.Resampling.BILINEAR, translate=(dx, dy))
        return image


BAD_IMAGES = ("error", "skip")


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
    files: list[Path], labels: np.ndarray, bad_images: str
) -> tuple[list[Path], np.ndarray]:
    """Read every image once, before training: a file that cannot be read fails the run with
    its path (``bad_images=error``), or is left out and counted (``skip``).

    Raises:
        ConfigError: naming the first unreadable file, and how many there are.
    """
    reasons = [unreadable(f) for f in files]
    bad = [i for i, reason in enumerate(reasons) if reason is not None]
    if not bad:
        return files, labels
    first = f"{files[bad[0]]} ({reasons[bad[0]]})"
    if bad_images == "error":
        raise ConfigError(
            f"data.root: {len(bad)} of {len(files)} images cannot be read, first {first}; "
            "remove them, or give data.bad_images=skip to leave them out"
        )
    log.warning("data.bad_images=skip: left out %d unreadable images, first %s", len(bad), first)
    keep = np.setdiff1d(np.arange(len(files)), bad)
    return [files[i] for i in keep], labels[keep]


def find_images(root: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """Every image under ``root/<class>/``, its label, and the class names in sorted order.

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
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in EXTENSIONS)
        if not found:
            raise ConfigError(f"data.root: class folder {root / name} holds no image {EXTENSIONS}")
        files += found
        labels += [index] * len(found)
    return files, np.asarray(labels, dtype=np.int64), classes


class ImageFiles(Dataset[tuple[torch.Tensor, int]]):
    """Reads, resizes, augments and normalises one image per item: ``(C, H, W)`` floats."""

    def __init__(
        self,
        files: list[Path],
        labels: np.ndarray,
        size: tuple[int, int],
        channels: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        augment: Augment | None = None,
    ) -> None:
        self.files, self.labels = files, labels
        self.size, self.mode = size, CHANNELS[channels]
        self.mean, self.std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.files)

    def pixels(self, i: int, augment: bool = True) -> torch.Tensor:
        """Image ``i`` as ``(C, H, W)`` floats in [0, 1]."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.files[i]) as raw:
                image = raw.convert(self.mode).resize(self.size[::-1], Image.Resampling.BILINEAR)
        except (OSError, UnidentifiedImageError) as err:
            raise ConfigError(f"data.root: cannot read image {self.files[i]}: {err}") from err
        if augment and self.augment is not None:
            image = self.augment(image)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)  # (H, W[, C])
        return x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = (self.pixels(i) - self.mean) / self.std
        if self.augment is not None and self.augment.noise:
            x = x + self.augment.noise * torch.randn_like(x)
        return x, int(self.labels[i])


class ImageFolderDataModule(pl.LightningDataModule):
    """Classify images stored as ``root/<class>/<any name>.png|jpg|...``.

    The split is stratified and depends on ``split_seed`` alone; the per-channel mean and
    standard deviation come from (up to ``stats_images``) training images. Images are read in
    ``num_workers`` DataLoader worker processes; augmentation applies to the training split.

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
        bad_images: ``error``: an image that cannot be read fails the run at setup, naming
            it; ``skip``: it is left out, and the count logged.

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
        for name, value in (("batch_size", batch_size), ("num_workers", num_workers + 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{name} must be a positive integer, got {value!r}")
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
        # What trainlab reads (the README's "Your own DataModule"); known after setup().
        self.task = "classification"
        self.modality = "image"
        self.class_names: list[str] | None = None
        self.input_shape: tuple[int, ...] | None = None
        self.num_outputs: int | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        files, labels, classes = find_images(self.root)
        files, labels = check_images(files, labels, self.bad_images)
        indices = stratified_indices(labels, self.val_fraction, self.test_fraction, self.split_seed)
        if self.image_size is None:
            from PIL import Image

            with Image.open(files[0]) as first:
                self.image_size = (first.height, first.width)
        size = (int(self.image_size[0]), int(self.image_size[1]))
        train = indices["train"]
        mean, std = self._statistics([files[i] for i in train], labels[train], size)
        for split, rows in indices.items():
            augment = self.augment if split == "train" else None
            picked = [files[i] for i in rows]
            self.datasets[split] = ImageFiles(
                picked, labels[rows], size, self.channels, mean, std, augment
            )
        self.class_names = classes
        self.num_outputs = len(classes)
        self.input_shape = (self.channels, *size)

    def _statistics(
        self, files: list[Path], labels: np.ndarray, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std of up to ``stats_images`` training images (a fixed pick)."""
        raw = ImageFiles(files, labels, size, self.channels, torch.zeros(1), torch.ones(1))
        pick = np.random.default_rng(self.split_seed).permutation(len(files))[: self.stats_images]
        pixels = torch.stack([raw.pixels(int(i), augment=False) for i in pick])  # (N, C, H, W)
        std = pixels.std(dim=(0, 2, 3))
        return pixels.mean(dim=(0, 2, 3)), torch.where(std > 0, std, torch.ones_like(std))

    def _loader(self, split: str, shuffle: bool) -> DataLoader[Any]:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[Any]:
        return self._loader("test", shuffle=False)
