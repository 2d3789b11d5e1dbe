"""IDX files (the MNIST format) and a checked download, without torchvision."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.errors import ConfigError

# IDX type codes -> big-endian numpy dtypes
IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into an array.

    Raises:
        ConfigError: the file is not a valid IDX file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ConfigError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ConfigError(
            f"{path}: IDX header promises shape {shape} ({expected} bytes) "
            f"but holds {len(data) - header}"
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    filename: str, md5: str, mirrors: Sequence[str], dest_dir: Path, timeout: float = 60.0
) -> Path:
    """Fetch ``filename`` from the first mirror that serves it with the right MD5.

    The file is written to a temporary name and moved into place only once its checksum
    matches, so an interrupted or corrupt download never leaves a file that looks complete.

    Raises:
        ConfigError: no mirror gave a file with the expected checksum.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / filename
    errors = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{filename}.")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                shutil.copyfileobj(resp, out)
            got = md5sum(tmp)
            if got != md5:
                errors.append(f"{url}: checksum {got} != expected {md5}")
                continue
            tmp.replace(target)
            return target
        except (urllib.error.URLError, OSError) as err:
            errors.append(f"{url}: {err}")
        finally:
            tmp.unlink(missing_ok=True)
    raise ConfigError(f"could not download {filename}:\n  " + "\n  ".join(errors))
