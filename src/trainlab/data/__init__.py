"""LightningDataModules: bundled offline datasets, generated long-range sequence tasks, the user's
CSV files, MNIST-style IDX files, and image folders on disk."""

from trainlab.data.base import InMemoryDataModule, Loaded
from trainlab.data.csv import CSVDataModule
from trainlab.data.image_folder import ImageFolderDataModule
from trainlab.data.loader import TensorBatches
from trainlab.data.mnist import IDXImageDataModule
from trainlab.data.sklearn_sets import SklearnDataModule
from trainlab.data.synthetic import LongRangeDataModule

__all__ = [
    "CSVDataModule",
    "IDXImageDataModule",
    "ImageFolderDataModule",
    "InMemoryDataModule",
    "Loaded",
    "LongRangeDataModule",
    "SklearnDataModule",
    "TensorBatches",
]
