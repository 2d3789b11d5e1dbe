"""LightningDataModules: bundled offline datasets, generated long-range sequence tasks, the user's
CSV files, MNIST-style IDX files, image folders on disk, packed data larger than memory, text,
sound and graphs."""

from trainlab.data.audio import ToneDataModule
from trainlab.data.base import InMemoryDataModule, Loaded
from trainlab.data.csv import CSVDataModule
from trainlab.data.graphs import BlockModelDataModule, CyclesDataModule, KarateClubDataModule
from trainlab.data.image_folder import ImageFolderDataModule
from trainlab.data.loader import TensorBatches
from trainlab.data.mnist import IDXImageDataModule
from trainlab.data.packed import PackedDataModule
from trainlab.data.resumable import ResumableLoader, ResumableSampler
from trainlab.data.sklearn_sets import SklearnDataModule
from trainlab.data.synthetic import LongRangeDataModule, SignalsDataModule
from trainlab.data.text import TextDataModule, Vocabulary

__all__ = [
    "BlockModelDataModule",
    "CSVDataModule",
    "CyclesDataModule",
    "IDXImageDataModule",
    "ImageFolderDataModule",
    "InMemoryDataModule",
    "KarateClubDataModule",
    "Loaded",
    "LongRangeDataModule",
    "PackedDataModule",
    "ResumableLoader",
    "ResumableSampler",
    "SignalsDataModule",
    "SklearnDataModule",
    "TensorBatches",
    "TextDataModule",
    "ToneDataModule",
    "Vocabulary",
]
