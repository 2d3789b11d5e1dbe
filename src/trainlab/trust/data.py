"""Same run, same data: what a run read, and a check that eval, predict and export read it too.

Training records ``data.json`` in the run directory: for every data file or folder the data
config names (``data.path``, ``data.root``, ...), its absolute path, its size and a SHA-256 of
its content (of a folder: of its file names and sizes); and a SHA-256 of each split as the
DataModule holds it (its tensors, or its files and labels), so that a split drawn differently
(another library version, a changed fraction) is caught too. Relative paths are made absolute in
``config.yaml``, so the run rebuilds from any working directory. ``eval``, ``predict``,
``export`` and ``resume=auto`` compare the files before they build anything, and the splits once
the DataModule is built, and refuse, naming the file or split, when it changed (rows appended to
a CSV file, images added to a folder), unless ``allow_data_change=true``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from trainlab.errors import ConfigError
from trainlab.trust.run_dir import DATA

PATH_KEYS = ("path", "root", "dir", "file")  # a data key ending so names a file or folder
_SKIP = ("vocab_file",)  # written into the run by the run itself


def _path_keys(data: Any) -> list[str]:
    if not isinstance(data, Mapping):
        return []
    return [
        str(k)
        for k, v in data.items()
        if isinstance(v, str) and str(k).endswith(PATH_KEYS) and str(k) not in _SKIP and v
    ]


def absolute_paths(data: Any) -> dict[str, str]:
    """The data config's file and folder values made absolute (those that exist)."""
    return {
        key: str(Path(data[key]).resolve())
        for key in _path_keys(data)
        if Path(data[key]).exists() and not Path(data[key]).is_absolute()
    }


def _files(folder: str) -> Iterator[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):  # as pathlib's rglob: no linked folder
                yield from _files(entry.path)
            elif entry.is_file():
                yield entry


def listing(folder: Path) -> list[tuple[str, os.DirEntry[str]]]:
    """Every file under ``folder`` at any depth, as its path relative to ``folder`` (with
    ``/``) and its directory entry, sorted folder by folder as paths sort (``sub/z.png``
    before ``sub.png``) and without linked folders, as pathlib's ``rglob`` lists them: the
    order image splits and fingerprints were made in. ``os.scandir`` names the files with
    their folder's listing; nothing reads them."""
    skip = len(str(folder).rstrip(os.sep)) + 1
    found = [(entry.path[skip:].replace(os.sep, "/"), entry) for entry in _files(str(folder))]
    return sorted(found, key=lambda file: file[0].split("/"))


def fingerprint(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file's content, or of a folder's file names and sizes."""
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return {"kind": "file", "bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    files = [(name, entry.stat().st_size) for name, entry in listing(path)]
    for name, size in files:
        digest.update(f"{name}\0{size}\n".encode())
    total = sum(size for _, size in files)
    return {"kind": "folder", "files": len(files), "bytes": total, "sha256": digest.hexdigest()}


def split_digests(dm: Any) -> dict[str, str]:
    """A SHA-256 of each split a DataModule holds: of its tensors (in-memory and text data), or
    of its files' names and labels (an image folder); none for other DataModules."""
    found = {}
    tensors = getattr(dm, "tensors", None)
    datasets = getattr(dm, "datasets", None) or {}
    for split in ("train", "val", "test"):
        digest = hashlib.sha256()
        dataset = datasets.get(split)
        if callable(tensors):
            for tensor in tensors(split):
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        elif dataset is not None and hasattr(dataset, "names"):  # relative paths, UTF-8
            for name, label in zip(dataset.names, dataset.labels, strict=True):
                digest.update(b"%s\0%d\n" % (name, label))
        elif dataset is not None and hasattr(dataset, "files"):
            root = Path(getattr(dm, "root", "/"))
            for file, label in zip(dataset.files, dataset.labels, strict=True):
                digest.update(f"{Path(file).relative_to(root).as_posix()}\0{label}\n".encode())
        else:
            continue
        found[split] = digest.hexdigest()
    return found


def record(data: Any, dm: Any, run_dir: Path) -> None:
    """Write ``data.json``: the fingerprint of each data file or folder the config names, and
    of each split."""
    from trainlab.trust.files import write_atomic

    files = {
        key: {"path": str(Path(data[key]).resolve()), **fingerprint(Path(data[key]))}
        for key in _path_keys(data)
        if Path(data[key]).exists()
    }
    record = {"files": files, "splits": split_digests(dm)}
    write_atomic(run_dir / DATA, json.dumps(record, indent=2))


def _recorded(run_dir: Path, allow_change: bool) -> dict[str, Any]:
    recorded = run_dir / DATA
    if allow_change or not recorded.is_file():  # runs from before data.json: nothing to compare
        return {}
    found: dict[str, Any] = json.loads(recorded.read_text())
    return found


def check(run_dir: Path, allow_change: bool) -> None:
    """Refuse to rebuild a run whose data files differ from those it trained on (before
    anything is built).

    Raises:
        ConfigError: naming the key, the file and what changed.
    """
    for key, then in _recorded(run_dir, allow_change).get("files", {}).items():
        path = Path(then["path"])
        if not path.exists():
            raise ConfigError(
                f"data.{key}: {path}, which run {run_dir} trained on, is gone; put it back, or "
                "give allow_data_change=true to rebuild the run from other data"
            )
        now = fingerprint(path)
        if now["sha256"] != then["sha256"]:
            sizes = f"{then['bytes']} -> {now['bytes']} bytes"
            if then["kind"] == "folder":
                sizes = f"{then['files']} -> {now['files']} files, {sizes}"
            raise ConfigError(
                f"data.{key}: {path} changed since run {run_dir} trained on it ({sizes}); "
                "eval, predict and export would read other data. Restore it, or give "
                "allow_data_change=true"
            )


def check_splits(run_dir: Path, dm: Any, allow_change: bool) -> None:
    """Refuse a rebuilt DataModule whose splits differ from those the run had.

    Raises:
        ConfigError: naming the split.
    """
    then = _recorded(run_dir, allow_change).get("splits", {})
    now = split_digests(dm)
    if changed := [split for split in then if split in now and now[split] != then[split]]:
        raise ConfigError(
            f"data: the {', '.join(changed)} split(s) rebuilt for run {run_dir} differ from "
            "those it trained and tested on (the data, or how it is split, changed); give "
            "allow_data_change=true to use them anyway"
        )
