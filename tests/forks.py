"""What a forker writes: a DataModule subclass with its own train_dataloader, a DataModule of
their own with ordinary DataLoaders, and a LightningModule of their own. The contract tests
train with them as a user would."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from trainlab.data import SklearnDataModule


class NoisyImages(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Adds fresh Gaussian noise to every image each time it is read."""

    served = 0  # how many samples any instance served (the test checks this loader ran)

    def __init__(self, x: torch.Tensor, y: torch.Tensor, std: float) -> None:
        self.x, self.y, self.std = x, y, std

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        NoisyImages.served += 1
        return self.x[i] + self.std * torch.randn_like(self.x[i]), self.y[i]


class NoisyDigits(SklearnDataModule):
    """The bundled digits with noise augmentation, added the way the Lightning docs teach."""

    def train_dataloader(self) -> DataLoader[Any]:
        x, y = self.tensors("train")
        return DataLoader(NoisyImages(x, y, std=0.1), batch_size=self.batch_size, shuffle=True)


class DigitsLoaders(pl.LightningDataModule):
    """A DataModule of one's own: the digits in memory, served by ordinary DataLoaders, with the
    attributes trainlab reads (task, input_shape, modality, num_outputs, class_names). Its
    training loader is the Lightning docs' ``DataLoader(shuffle=True)``, with workers or not."""

    def __init__(self, batch_size: int = 64, num_workers: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.task, self.modality = "classification", "tabular"
        self.input_shape: tuple[int, ...] | None = None
        self.num_outputs: int | None = None
        self.class_names: list[str] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.input_shape is not None:
            return
        bunch = load_digits()
        x = (bunch.data / 16.0 - 0.5).astype(np.float32)
        x_rest, x_test, y_rest, y_test = train_test_split(
            x, bunch.target, test_size=0.2, random_state=0, stratify=bunch.target
        )
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=0.125, random_state=0, stratify=y_rest
        )
        self.sets = {
            name: TensorDataset(torch.from_numpy(a), torch.from_numpy(b).long())
            for name, a, b in (
                ("train", x_train, y_train),
                ("val", x_val, y_val),
                ("test", x_test, y_test),
            )
        }
        self.input_shape, self.num_outputs = (64,), 10
        self.class_names = [str(c) for c in bunch.target_names]

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(
            self.sets["train"],
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.sets["val"], batch_size=256)

    def test_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.sets["test"], batch_size=256)


class FixedOrderDigits(DigitsLoaders):
    """Reads its training split in an order of its own (a sampler trainlab cannot rebuild)."""

    def train_dataloader(self) -> DataLoader[Any]:
        order = list(range(len(self.sets["train"])))[::-1]
        return DataLoader(self.sets["train"], batch_size=self.batch_size, sampler=order)


class NoModality(DigitsLoaders):
    """Forgets one of the attributes trainlab reads."""

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        del self.modality


class TinyClassifier(pl.LightningModule):
    """A LightningModule of one's own, as in Lightning's docs: it builds its own network and
    takes from trainlab only what the data knows (num_classes, input_shape)."""

    def __init__(
        self, num_classes: int, input_shape: tuple[int, ...], lr: float = 3e-3, hidden: int = 64
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        size = int(np.prod(input_shape))
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(size, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # logits

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch: Any, split: str) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{split}/loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log(f"{split}/acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])


class MonitoringClassifier(TinyClassifier):
    """Takes the monitored metric's name (to log it under that name) but not the mode."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], monitor: str) -> None:
        super().__init__(num_classes, input_shape)
        self.monitor = monitor

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log(self.monitor, F.cross_entropy(self(x), y))


class SilentClassifier(TinyClassifier):
    """Logs nothing during validation, so the monitored metric never exists."""

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self(batch[0])


class NoTrainingStep(pl.LightningModule):
    """Forgets training_step."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.layer = nn.Linear(int(np.prod(input_shape)), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.flatten(1))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class TestErrors(pl.Callback):
    """A forker's callback that reports: counts the test split's errors by (true, predicted)
    pair and reports them through the three members of the callback contract."""

    def __init__(self) -> None:
        self.pairs: dict[str, int] = {}
        self.trained_batches = 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        self.trained_batches += 1

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        x, y = batch
        pred = pl_module(x).argmax(1)
        for true, guess in zip(y.tolist(), pred.tolist(), strict=True):
            if true != guess:
                self.pairs[f"{true}->{guess}"] = self.pairs.get(f"{true}->{guess}", 0) + 1

    def report_metrics(self) -> dict[str, float]:
        return {"test/errors": float(sum(self.pairs.values()))}

    def report_summary(self) -> dict[str, Any]:
        return {"test_errors": dict(sorted(self.pairs.items(), key=lambda kv: -kv[1]))}

    def diagnostics(self) -> dict[str, Any]:
        return {"trained_batches": self.trained_batches}  # read after training, before the test
