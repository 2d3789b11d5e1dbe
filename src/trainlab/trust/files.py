"""Nothing lost: what trainlab may delete, what it may write over, and how it writes.

- **Delete** only what this process created. A run directory is *claimed* before Hydra writes
  into it (:class:`RunDirGuard`, a Hydra callback): the claim notes whether the folder existed
  and what it held. A run whose config is rejected then removes exactly the entries that were
  not there before, and the folders above it that this process made (:func:`discard`).
- **Write over** no result: a run directory that already holds one
  (:data:`~trainlab.trust.run_dir.RESULTS`) is refused before anything is written, unless
  ``resume=auto`` (continue it) or ``overwrite=true`` (the earlier run is moved into
  ``replaced/<time>/`` inside it, nothing deleted). A sweep directory is refused the same way,
  and held by a lock while its sweep runs, so two processes given the same ``hydra.sweep.dir``
  never write into the same job folders.
- **Write** whole files or nothing: :func:`write_atomic` writes beside the target, syncs, and
  renames over it; :func:`write_new` never replaces a file; :func:`rotate` swaps in a new
  ``last.ckpt`` with the old one kept and some ``last.ckpt`` present at every instant.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from trainlab.errors import ConfigError
from trainlab.trust.run_dir import RunDir
from trainlab.trust.secrets import redact

log = logging.getLogger(__name__)

REPLACED = "replaced"  # overwrite=true moves the earlier run here: replaced/<time>/
FAILURES = "failures"  # a continued run keeps its earlier attempts' failure.json here
LOCK_FILE = ".trainlab.lock"
HYDRA_DIR = ".hydra"


# --- writing -------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (a no-op where directories cannot be
    opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def writing(path: Path, tmp: Path | None = None) -> Iterator[None]:
    """A write of ``path`` (through ``tmp``): an ``OSError`` (a full disk, a quota) removes
    ``tmp``, which this process made, and names ``path``, the file the user knows."""
    try:
        yield
    except OSError as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if err.errno is None:
            raise
        raise OSError(err.errno, os.strerror(err.errno), str(path)) from err


def _write_synced(path: Path, data: str | bytes | memoryview) -> Path:
    """``data`` in a synced temporary file beside ``path``; the temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    with writing(path, tmp), tmp.open("wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


def write_atomic(path: str | Path, data: str | bytes | memoryview) -> None:
    """Write ``data`` to ``path`` so that a kill at any instant leaves the old file or the new
    one, whole: a temporary file beside it, synced, then renamed over it."""
    path = Path(path)
    tmp = _write_synced(path, data)
    with writing(path, tmp):
        os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save`` whole or not at all: serialised in memory first (a write to a full disk
    then fails as an ``OSError`` naming ``path``, not inside torch's zip writer, which leaves a
    cut-off file), then written as :func:`write_atomic` writes."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(path, buffer.getbuffer())


def save_figure(figure: Any, path: str | Path, dpi: int = 110) -> Path:
    """A matplotlib figure as a PNG at ``path``, written atomically (:func:`write_atomic`): a
    kill while it is drawn leaves the picture before, never half of one."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    write_atomic(path, buffer.getvalue())
    return Path(path)


def redact_file(path: Path) -> None:
    """Mask secrets in a text file another program wrote (Hydra's ``.hydra/*.yaml``)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return
    if (masked := redact(text)) != text:
        write_atomic(path, masked)


def write_new(path: str | Path, data: str | bytes, key: str = "output") -> None:
    """Write a file that must not exist yet; never replaces one, even if another process
    creates it meanwhile.

    Raises:
        ConfigError: ``path`` exists, naming ``key``.
    """
    path = Path(path)
    if path.exists():
        raise ConfigError(f"{key}: {path} exists; choose another path (nothing is overwritten)")
    tmp = _write_synced(path, data)
    try:
        os.link(tmp, path)  # fails if path appeared meanwhile
    except FileExistsError as err:
        raise ConfigError(
            f"{key}: {path} exists; choose another path (nothing is overwritten)"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def sync_file(path: str | Path) -> None:
    """Flush a file another writer (torch.save, a logger) closed to the disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def rotate(new: Path, path: Path, previous: Path) -> None:
    """Swap the synced file ``new`` in as ``path``, keeping the file it replaces as
    ``previous``. ``path`` exists at every instant (old, then new): ``previous`` is made as a
    second link to it first, and ``new`` renamed over it last."""
    if path.is_file():
        kept = _temporary(previous)
        with writing(previous, kept):
            try:
                os.link(path, kept)
            except OSError:  # a file system without hard links
                shutil.copy2(path, kept)
                sync_file(kept)
            os.replace(kept, previous)
    os.replace(new, path)
    _fsync_dir(path.parent)


def refuse_foreign(folder: Path, names: list[str], owner: str) -> None:
    """Before a tool writes derived files (``names``) into ``folder``: each that exists must
    have been written there by the same tool before (its record, ``.<owner>.json``), else
    nothing is written.

    Raises:
        ConfigError: naming the files that the tool did not write.
    """
    record = folder / f".{owner}.json"
    ours = set(json.loads(record.read_text())) if record.is_file() else set()
    if foreign := sorted(n for n in names if (folder / n).exists() and n not in ours):
        raise ConfigError(
            f"{folder} already holds {', '.join(foreign)}, not written by {owner}; nothing is "
            "overwritten: give another folder"
        )


def record_written(folder: Path, names: list[str], owner: str) -> None:
    """Note the files ``owner`` wrote into ``folder`` (see :func:`refuse_foreign`)."""
    record = folder / f".{owner}.json"
    ours = set(json.loads(record.read_text())) if record.is_file() else set()
    write_atomic(record, json.dumps(sorted(ours | set(names))))


# --- claiming run and sweep directories ----------------------------------------------------


@dataclass
class Claim:
    """What this process found in a directory before it wrote there."""

    path: Path
    made: Path | None  # the topmost folder this process created (``path`` or one above), or None
    before: frozenset[str]  # the entries it held before (and those of its .hydra/)
    lock: IO[Any] | None = field(default=None, repr=False)


_CLAIMS: dict[Path, Claim] = {}


def held_results(path: Path, sweep: bool = False) -> list[str]:
    """The results ``path`` holds (of a sweep: in its job folders), relative to ``path``."""
    return RunDir(path).held(sweep)


def _entries(path: Path) -> frozenset[str]:
    """What ``path`` holds, with what its ``.hydra/`` holds (Hydra writes there, and in
    ``path`` itself, nowhere else)."""
    if not path.is_dir():
        return frozenset()
    found = set(os.listdir(path))
    if (path / HYDRA_DIR).is_dir():
        found.update(f"{HYDRA_DIR}/{name}" for name in os.listdir(path / HYDRA_DIR))
    return frozenset(found)


def _move_aside(path: Path) -> Path:
    """``overwrite=true``: move everything in ``path`` into ``path/replaced/<time>/``."""
    aside = path / REPLACED / time.strftime("%Y-%m-%d_%H-%M-%S")
    while aside.exists():
        aside = aside.with_name(aside.name + "_")
    aside.mkdir(parents=True)
    for entry in sorted(os.listdir(path)):
        if entry not in (REPLACED, LOCK_FILE):
            os.replace(path / entry, aside / entry)
    _fsync_dir(path)
    return aside


def _lock(path: Path, what: str) -> IO[Any]:
    """An exclusive lock on ``path`` for as long as this process lives."""
    handle = (path / LOCK_FILE).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        handle.close()
        raise ConfigError(
            f"{what} {path} is in use by another trainlab process; wait for it to end or "
            "choose another directory"
        ) from err
    return handle


def claim(
    path: str | Path, resume: Any = None, overwrite: Any = False, sweep: bool = False
) -> Claim:
    """Claim a run directory (or, with ``sweep``, a sweep directory) before anything is written
    into it, and lock it.

    Raises:
        ConfigError: it holds a run and neither ``resume=auto`` nor ``overwrite=true`` was
            given, both were, or another process holds it.
    """
    what = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    if not isinstance(overwrite, bool):
        raise ConfigError(f"overwrite must be true or false, got {overwrite!r}")
    if resume == "auto" and overwrite:
        raise ConfigError("give resume=auto (continue the run) or overwrite=true, not both")
    path = Path(path).resolve()
    made, probe = None, path
    while not probe.exists():
        made, probe = probe, probe.parent
    before = _entries(path)
    found = held_results(path, sweep)
    if found and resume != "auto" and not overwrite:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise ConfigError(
            f"{what} {path} already holds a run ({shown}); give resume=auto to continue it, "
            f"overwrite=true to move it into {REPLACED}/ and start afresh, or another directory"
        )
    path.mkdir(parents=True, exist_ok=True)
    handle = _lock(path, what)
    if found and overwrite:
        aside = _move_aside(path)
        log.warning("overwrite=true: the earlier run in %s was moved into %s", path, aside)
        before = _entries(path) - {LOCK_FILE}  # replaced/ alone
    _CLAIMS[path] = found_claim = Claim(path, made, before, handle)
    return found_claim


def keep_failure_history(run_dir: str | Path) -> None:
    """A job that runs again in its directory (``resume=auto``) moves the ``failure.json`` of
    the attempt before into ``failures/<n>.json``: the record is kept, and the job's status is
    this attempt's."""
    run = Path(run_dir)
    failure = run / "failure.json"
    if failure.is_file():
        (run / FAILURES).mkdir(exist_ok=True)
        number = len(list((run / FAILURES).glob("*.json"))) + 1
        os.replace(failure, run / FAILURES / f"{number}.json")


def discard(path: str | Path) -> bool:
    """Remove what this process created in a claimed directory (all of it if it made the
    directory), and the folders above it that it made and that this leaves empty. A directory
    this process did not claim is never touched."""
    path = Path(path).resolve()
    found = _CLAIMS.pop(path, None)
    if found is None or not path.is_dir():
        return False
    for entry in sorted(_entries(path) - found.before, reverse=True):  # .hydra/x before .hydra
        target = path / entry
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    if found.lock is not None:
        found.lock.close()
    if found.made is not None:
        folder = path
        while not any(folder.iterdir()):
            folder.rmdir()
            if folder == found.made:
                break
            folder = folder.parent
    return True


def _secondary_rank() -> bool:
    """A rank other than 0 of a distributed job: rank 0 claims the directory for all."""
    return any(os.environ.get(k, "0") != "0" for k in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))


class RunDirGuard(Callback):
    """Hydra callback (``hydra.callbacks.run_dir_guard``): claims the run directory of a
    single run, the sweep directory of a multirun, and each job's folder, before Hydra writes
    into them. A refusal is one line on stderr and exit status 2, with nothing written."""

    @staticmethod
    def _claim(config: DictConfig, path: str, sweep: bool = False) -> None:
        if _secondary_rank():
            return
        try:
            claim(path, config.get("resume"), config.get("overwrite", False), sweep=sweep)
        except ConfigError as err:
            print(f"trainlab: error: {err}", file=sys.stderr)
            raise SystemExit(2) from err

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, str(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, str(config.hydra.sweep.dir), sweep=True)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A job of a sweep: its folder is new in this sweep, or (on a cluster, where a job
        may run again after a requeue) continued only with ``resume=auto``."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra = HydraConfig.get()
        job_dir = Path(str(hydra.runtime.output_dir))
        sweep_dir = Path(str(hydra.sweep.dir))
        for written in [*job_dir.glob(".hydra/*.yaml"), sweep_dir / "multirun.yaml"]:
            if written.is_file():
                redact_file(written)  # Hydra's copies of a secret put in a config file
        if hydra.mode != RunMode.MULTIRUN or _secondary_rank():
            return
        if config.get("resume") == "auto":
            keep_failure_history(job_dir)
            return
        if sweep_dir.resolve() in _CLAIMS:
            return  # this process claimed the sweep: its job folders are its own
        if found := held_results(job_dir):
            raise ConfigError(
                f"job folder {job_dir} already holds a run ({', '.join(found)}); a job run "
                "again after a requeue continues only with resume=auto"
            )
