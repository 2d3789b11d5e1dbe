"""Pack an image folder or a CSV file for ``data=packed``: ``python -m trainlab.pack``.

    python -m trainlab.pack images <root> <out> [--image-size H W] [--channels 3]
    python -m trainlab.pack csv <file.csv> <out> --target label [--exclude id ...]

Images are decoded once (in ``--workers`` processes), resized and stored as ``uint8`` rows;
a CSV file is read in chunks of ``--chunk-rows``, so neither needs to fit in memory: a shard
(``--shard-mb``) is the most that is held at once. The folder is written beside ``<out>`` and
renamed into place when whole: a kill leaves no half-packed ``<out>``, and an existing one is
never overwritten. Then train with ``data=packed data.path=<out>``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.errors import ConfigError

TOOL = "trainlab-pack"


class ShardWriter:
    """Rows of one shape and dtype into ``x-00000.npy`` ... of at most ``shard_rows`` each;
    holds one shard in memory at most."""

    def __init__(self, folder: Path, shape: tuple[int, ...], dtype: str, shard_rows: int):
        from trainlab.data.packed import shard_name

        self.folder, self.name = folder, shard_name
        self.buffer = np.empty((shard_rows, *shape), dtype)
        self.filled = 0
        self.shards: list[dict[str, Any]] = []

    def add(self, rows: np.ndarray) -> None:
        while len(rows):
            take = min(len(rows), len(self.buffer) - self.filled)
            self.buffer[self.filled : self.filled + take] = rows[:take]
            self.filled += take
            rows = rows[take:]
            if self.filled == len(self.buffer):
                self.flush()

    def flush(self) -> None:
        if not self.filled:
            return
        file = self.folder / self.name(len(self.shards))
        np.save(file, self.buffer[: self.filled], allow_pickle=False)
        digest = hashlib.sha256()
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        self.shards.append({"file": file.name, "rows": self.filled, "sha256": digest.hexdigest()})
        self.filled = 0

    @property
    def count(self) -> int:
        return sum(s["rows"] for s in self.shards) + self.filled


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds through staged(), which removes the partial folder


@contextlib.contextmanager
def staged(dest: Path) -> Iterator[Path]:
    """A hidden folder beside ``dest``, renamed to ``dest`` once whole; removed on an error,
    Ctrl-C or SIGTERM.

    Raises:
        ConfigError: ``dest`` exists (nothing is overwritten).
    """
    if dest.exists():
        raise ConfigError(f"{dest} exists; choose another output folder (nothing is overwritten)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield stage
        for file in stage.iterdir():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())
        stage.chmod(0o755)
        stage.rename(dest)
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(stage, ignore_errors=True)


def _decode(
    job: tuple[str, list[str], tuple[int, int], int],
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One chunk of images as ``uint8`` rows ``(n, C, H, W)``, which of the chunk they are,
    and why the others are unreadable."""
    from trainlab.data.image_folder import CHANNELS, read_image

    root, names, size, channels = job
    rows: list[np.ndarray | None] = []
    bad: list[str] = []
    for name in names:
        try:  # decoded and resized as the image folder's workers do it
            image = read_image(os.path.join(root, name), CHANNELS[channels], size)
            pixels = np.asarray(image, dtype=np.uint8)
        except Exception as err:  # PIL raises many kinds
            bad.append(f"{os.path.join(root, name)} ({type(err).__name__}: {err})")
            rows.append(None)
            continue
        rows.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
    good = [r for r in rows if r is not None]
    stacked = np.stack(good) if good else np.empty((0, channels, *size), np.uint8)
    return stacked, np.asarray([r is not None for r in rows]), bad


def pack_images(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from multiprocessing import get_context

    from PIL import Image

    from trainlab.data.image_folder import CHANNELS, find_images

    if args.channels not in CHANNELS:  # before a folder of a million files is listed
        raise ConfigError(f"--channels must be one of {sorted(CHANNELS)}, got {args.channels}")
    root = Path(args.source).resolve()
    names, labels, classes = find_images(root)
    if args.image_size:
        size = (int(args.image_size[0]), int(args.image_size[1]))
    else:
        with Image.open(root / names[0].decode()) as first:
            size = (first.height, first.width)
    shape = (args.channels, *size)
    row_bytes = int(np.prod(shape))
    writer = ShardWriter(out, shape, "uint8", max(1, int(args.shard_mb * 2**20) // row_bytes))
    chunk = 512
    jobs = [
        (str(root), [n.decode() for n in names[i : i + chunk]], size, args.channels)
        for i in range(0, len(names), chunk)
    ]
    kept: list[np.ndarray] = []
    left_out: list[str] = []
    with get_context("fork").Pool(args.workers) as pool:
        for start, (rows, ok, bad) in zip(
            range(0, len(names), chunk), pool.imap(_decode, jobs), strict=True
        ):
            if bad and args.bad_images == "error":
                raise ConfigError(
                    f"cannot read image {bad[0]}; remove it, or give --bad-images skip"
                )
            left_out += bad
            kept.append(labels[start : start + chunk][ok])
            writer.add(rows)
            print(
                f"\r{TOOL}: {writer.count} of {len(names)} images",
                end="",
                file=sys.stderr,
                flush=True,
            )
    print(file=sys.stderr)
    writer.flush()
    if left_out:
        print(f"{TOOL}: left out {len(left_out)} unreadable images, first {left_out[0]}")
    np.save(out / "labels.npy", np.concatenate(kept), allow_pickle=False)
    return {
        "kind": "image",
        "task": "classification",
        "shape": list(shape),
        "class_names": classes,
        "count": writer.count,
        "shards": writer.shards,
        "left_out": len(left_out),
        "source": str(root),
    }


def pack_csv(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import pandas as pd

    from trainlab.data.tables import infer_task, numeric_features

    source = Path(args.source).resolve()
    if not source.is_file():
        raise ConfigError(f"{source} is not a file")

    def chunks() -> Iterator[pd.DataFrame]:
        try:
            yield from pd.read_csv(source, chunksize=args.chunk_rows)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
            raise ConfigError(f"cannot read {source} as CSV: {err}") from err

    # Pass 1: the columns, the rows, the target's values (to tell classes from a quantity).
    features: list[str] | None = None
    values: set[Any] = set()
    count = 0
    for frame in chunks():
        if args.target not in frame.columns:
            raise ConfigError(
                f"--target {args.target!r} is not a column of {source}: {list(frame.columns)}"
            )
        if features is None:
            features = [c for c in frame.columns if c != args.target and c not in args.exclude]
        numeric_features(frame[features], source)
        if frame[args.target].isna().any():
            raise ConfigError(f"{source}: the target column {args.target!r} has missing values")
        if len(values) <= 10_000:
            values.update(frame[args.target].unique().tolist())
        count += len(frame)
    if not count or not features:
        raise ConfigError(f"{source} has no rows or no feature columns")
    task = args.task if args.task != "auto" else infer_task(pd.Series(sorted(values, key=str)))
    classes = sorted(map(str, values)) if task == "classification" else None
    index = {name: i for i, name in enumerate(classes or [])}
    # Pass 2: the rows, shard by shard.
    writer = ShardWriter(
        out, (len(features),), "float32", max(1, int(args.shard_mb * 2**20) // (4 * len(features)))
    )
    labels = np.empty(count, np.int64 if classes else np.float32)
    done = 0
    for frame in chunks():
        writer.add(numeric_features(frame[features], source))
        target = frame[args.target]
        labels[done : done + len(frame)] = (
            target.astype(str).map(index).to_numpy() if classes else target.to_numpy(np.float32)
        )
        done += len(frame)
    writer.flush()
    np.save(out / "labels.npy", labels, allow_pickle=False)
    return {
        "kind": "tabular",
        "task": task,
        "shape": [len(features)],
        "class_names": classes,
        "feature_names": features,
        "count": writer.count,
        "shards": writer.shards,
        "source": str(source),
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=TOOL, description=__doc__.split("\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    images = kinds.add_parser("images", help="an image folder, root/<class>/*.png|jpg|...")
    images.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"))
    images.add_argument("--channels", type=int, default=3, help="1 (grayscale) or 3 (RGB)")
    images.add_argument("--bad-images", choices=("error", "skip"), default="error")
    images.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    table = kinds.add_parser("csv", help="a CSV file of numeric features and a target column")
    table.add_argument("--target", required=True)
    table.add_argument("--exclude", nargs="*", default=[], help="columns that are not features")
    table.add_argument("--task", choices=("auto", "classification", "regression"), default="auto")
    table.add_argument("--chunk-rows", type=int, default=100_000)
    for sub in (images, table):
        sub.add_argument("source", help="the image folder or the CSV file")
        sub.add_argument("out", type=Path, help="the packed folder to write (must not exist)")
        sub.add_argument("--shard-mb", type=float, default=64, help="the size of a shard, in MiB")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from trainlab.data.packed import FORMAT, META, VERSION

    args = parse(argv)
    out = Path(args.out).resolve()
    try:
        with staged(out) as stage:
            meta = (pack_images if args.kind == "images" else pack_csv)(args, stage)
            meta = {"format": FORMAT, "version": VERSION, **meta}
            (stage / META).write_text(json.dumps(meta, indent=1))
    except ConfigError as err:
        print(f"{TOOL}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{TOOL}: stopped; nothing was written", file=sys.stderr)
        return 130
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"packed {meta['count']} rows of {meta['shape']} into {out} ({total / 2**20:.1f} MiB)")
    print(f"train with: python -m trainlab.train data=packed data.path={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
