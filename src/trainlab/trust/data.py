"""Same run, same data: what a run read, and a check that eval, predict and export read it too.

Training records ``data.json`` in the run directory: for every data file or folder the data
config names (``data.path``, ``data.root``, ...), its absolute path, its size and a SHA-256 of
its content (of a folder: of its file names and sizes). Relative paths are made absolute in
``config.yaml``, so the run rebuilds from any working directory. ``eval``, ``predict`` and
``export`` compare before they build anything and refuse, naming the file, when it changed
(rows appended to a CSV file, images added to a folder), unless ``allow_data_change=true``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainlab.errors import ConfigError

DATA_FILE = "data.json"
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


def fingerprint(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file's content, or of a folder's file names and sizes."""
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return {"kind": "file", "bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    files = sorted(p for p in path.rglob("*") if p.is_file())
    total = 0
    for file in files:
        size = file.stat().st_size
        total += size
        digest.update(f"{file.relative_to(path).as_posix()}\0{size}\n".encode())
    return {"kind": "folder", "files": len(files), "bytes": total, "sha256": digest.hexdigest()}


def record(data: Any, run_dir: Path) -> None:
    """Write ``data.json``: the fingerprint of each data file or folder the config names."""
    from trainlab.trust.files import write_atomic

    found = {
        key: {"path": str(Path(data[key]).resolve()), **fingerprint(Path(data[key]))}
        for key in _path_keys(data)
        if Path(data[key]).exists()
    }
    write_atomic(run_dir / DATA_FILE, json.dumps(found, indent=2))


def check(run_dir: Path, allow_change: bool) -> None:
    """Refuse to rebuild a run whose data files differ from those it trained on.

    Raises:
        ConfigError: naming the key, the file and what changed.
    """
    recorded = run_dir / DATA_FILE
    if allow_change or not recorded.is_file():  # runs from before data.json: nothing to compare
        return
    for key, then in json.loads(recorded.read_text()).items():
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
