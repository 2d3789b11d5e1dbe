"""MNIST and Fashion-MNIST from their IDX files, with a real (opt-in) download."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainlab.data.base import InMemoryDataModule, Loaded
from trainlab.data.idx import download, md5sum, read_idx
from trainlab.errors import ConfigError

FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}

VARIANTS: dict[str, dict[str, Any]] = {
    "mnist": {
        "mirrors": [
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        "md5": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        "classes": [str(i) for i in range(10)],
    },
    "fashion_mnist": {
        "mirrors": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "md5": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        "classes": [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
    },
}


class IDXImageDataModule(InMemoryDataModule):
    """MNIST-style images (1x28x28, 10 classes) read from IDX files under ``root/variant``.

    The fixed 10,000-image test set is kept; validation is cut from the training images.

    Args:
        root: folder that holds ``<variant>/`` with the four ``*.gz`` IDX files.
        variant: ``mnist`` or ``fashion_mnist``.
        download: fetch missing files (checksums are checked); off by default.
        verify: check the MD5 of files already on disk against the published ones.
        mirrors: where to download from; defaults to the variant's known mirrors.
        **kwargs: split, batch and normalisation settings of :class:`InMemoryDataModule`.
    """

    def __init__(
        self,
        root: str,
        variant: str = "mnist",
        download: bool = False,
        verify: bool = True,
        mirrors: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("normalize", "global")
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ConfigError(f"data.variant {variant!r} is unknown; use one of {sorted(VARIANTS)}")
        self.folder = Path(root) / variant
        self.variant = variant
        self.download = download
        self.verify = verify
        self.mirrors = list(mirrors) if mirrors else VARIANTS[variant]["mirrors"]

    def prepare_data(self) -> None:
        checksums = VARIANTS[self.variant]["md5"]
        missing = [name for name in FILES.values() if not (self.folder / name).is_file()]
        if missing and not self.download:
            raise ConfigError(
                f"{self.variant} files {missing} are not in {self.folder}; "
                f"run with data.download=true to fetch them, or copy them there"
            )
        for name in missing:
            download(name, checksums[name], self.mirrors, self.folder)
        if self.verify:
            for name in FILES.values():
                got = md5sum(self.folder / name)
                if got != checksums[name]:
                    raise ConfigError(
                        f"{self.folder / name}: checksum {got} differs from the published "
                        f"{checksums[name]}; delete it and download again, or set data.verify=false"
                    )

    def load(self) -> Loaded:
        self.prepare_data()
        arrays = {key: read_idx(self.folder / name) for key, name in FILES.items()}
        for split in ("train", "test"):
            x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                raise ConfigError(
                    f"{self.folder}: {split} images {x.shape} and labels {y.shape} do not match"
                )

        def images(a: np.ndarray) -> np.ndarray:
            return (a.astype(np.float32) / 255.0)[:, None]  # (N, 1, H, W)

        return Loaded(
            x=images(arrays["train_x"]),
            y=arrays["train_y"].astype(np.int64),
            x_test=images(arrays["test_x"]),
            y_test=arrays["test_y"].astype(np.int64),
            task="classification",
            modality="image",
            class_names=list(VARIANTS[self.variant]["classes"]),
        )
