"""Callbacks the end-to-end tests add to a run from the command line (``+callbacks.x=...``)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import torch
from omegaconf import DictConfig


class RecordRankWeights(pl.Callback):
    """After fit, each rank writes a digest of its weights and what it trained with."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        digest = hashlib.sha256()
        for name, tensor in sorted(pl_module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        dropouts = [m.p for m in pl_module.modules() if isinstance(m, torch.nn.Dropout)]
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "weights": digest.hexdigest(),
            "dropout": dropouts,
            "steps": trainer.global_step,
            "threads": torch.get_num_threads(),
        }
        self.dirpath.mkdir(parents=True, exist_ok=True)
        (self.dirpath / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


class BlowUpLearningRate(pl.Callback):
    """From ``epoch`` on, every optimiser runs at ``lr``: a healthy run made to diverge."""

    def __init__(self, epoch: int, lr: float) -> None:
        self.epoch, self.lr = epoch, lr

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch >= self.epoch:
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = self.lr


class NegativeBias(pl.Callback):
    """Before training, sets every linear layer's bias to ``value``: ReLUs after them go dead."""

    def __init__(self, value: float) -> None:
        self.value = value

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with torch.no_grad():
            for module in pl_module.modules():
                if isinstance(module, torch.nn.Linear):
                    module.bias.fill_(self.value)


class Interrupt(pl.Callback):
    """Ends training after ``epochs`` epochs, as a preempted job would: the configured length,
    and so every schedule, stays that of the whole run."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


class FailAt(pl.Callback):
    """Raises at the start of epoch ``epoch``, as a crash in user code would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"planned failure at epoch {self.epoch}")


class SaveCheckpointAt(pl.Callback):
    """At the start of epoch ``epoch``, saves ``manual.ckpt`` with ``trainer.save_checkpoint``
    (as a SLURM requeue does), then writes the epoch ``best.ckpt`` holds on disk to ``path``."""

    def __init__(self, epoch: int, path: str) -> None:
        self.epoch = epoch
        self.path = Path(path)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch != self.epoch:
            return
        ckpts = Path(trainer.default_root_dir) / "checkpoints"
        trainer.save_checkpoint(ckpts / "manual.ckpt")
        best = ckpts / "best.ckpt"
        held = torch.load(best, weights_only=True)["epoch"] if best.exists() else None
        self.path.write_text(json.dumps(held))


class RecordCheckpoints(pl.Callback):
    """At each epoch start, notes the epoch that ``last.ckpt`` and ``best.ckpt`` hold on disk
    (None: not there yet); writes ``{"last": [...], "best": [...]}`` to ``path`` when training
    ends, before the checkpoint callback's own end-of-training writes."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.seen: dict[str, list[int | None]] = {"last": [], "best": []}

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for name, seen in self.seen.items():
            ckpt = Path(trainer.default_root_dir) / "checkpoints" / f"{name}.ckpt"
            seen.append(torch.load(ckpt, weights_only=True)["epoch"] if ckpt.exists() else None)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.path.write_text(json.dumps(self.seen))


class RecordPid(pl.Callback):
    """Writes the process id that trained into ``<dirpath>/pid``."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import os

        self.dirpath.mkdir(parents=True, exist_ok=True)
        (self.dirpath / "pid").write_text(str(os.getpid()))


def find_postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl), or None."""
    import shutil

    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))  # Debian's layout
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@contextlib.contextmanager
def throwaway_postgres(
    password: str | None = None, host: str = "127.0.0.1", clients: str | None = None
) -> Iterator[str]:
    """A PostgreSQL server on a free port, removed afterwards; yields the URL of its database
    ``optuna`` for the user ``postgres``. With ``password``, the server asks for it
    (scram-sha-256) and the URL leaves it out: give it in the storage URL or ``PGPASSWORD``.
    It listens on ``host`` too, and lets in the network ``clients`` (e.g. ``10.77.0.0/24``,
    another node's processes) with the same authentication."""
    import os
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile

    import pytest

    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    pytest.importorskip("psycopg2")
    base = Path(tempfile.mkdtemp(prefix="trainlab-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    env = {**os.environ, "PGPASSWORD": password or ""}

    def pg(*args: str) -> None:
        done = subprocess.run([*run_as, *args], capture_output=True, text=True, cwd=base, env=env)
        assert done.returncode == 0, f"{args[0]}: {done.stdout}{done.stderr}"

    auth = ["--auth=trust"]
    if password is not None:
        (base / "pw").write_text(password)
        if run_as:
            os.chown(base / "pw", user.pw_uid, user.pw_gid)
        auth = ["--auth=scram-sha-256", f"--pwfile={base / 'pw'}"]
    pg(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", *auth)
    if clients is not None:
        method = "trust" if password is None else "scram-sha-256"
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {clients} {method}\n")
    addresses = ",".join(dict.fromkeys(["127.0.0.1", host]))
    options = f"-p {port} -k {base} -c listen_addresses={addresses}"
    pg(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(base / "log"),
        "-w",
        "start",
    )
    try:
        local = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        pg(str(bin_dir / "createdb"), *local, "optuna")
        yield f"postgresql+psycopg2://postgres@{host}:{port}/optuna"
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


class SignalAt(pl.Callback):
    """Sends this process ``signal`` after batch ``batch`` of epoch ``epoch`` (of its training,
    or of its validation with ``stage="validation"``): ``SIGTERM``, as SLURM does before a time
    limit or a preemption, or ``SIGKILL``, where no handler runs, as when a node dies."""

    def __init__(
        self, epoch: int, batch: int, signal: str = "SIGTERM", stage: str = "train"
    ) -> None:
        self.epoch, self.batch, self.signal, self.stage = epoch, batch, signal, stage

    def _send(self, trainer: pl.Trainer, stage: str, batch_idx: int) -> None:
        if (stage, trainer.current_epoch, batch_idx) == (self.stage, self.epoch, self.batch):
            import os
            import signal

            os.kill(os.getpid(), getattr(signal, self.signal))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:  # type: ignore[no-untyped-def]
        self._send(trainer, "train", batch_idx)

    def on_validation_batch_end(  # type: ignore[no-untyped-def]
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs,
        batch,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:
            self._send(trainer, "validation", batch_idx)


class KillAtWrite(pl.Callback):
    """Kills this process with SIGKILL at the ``at``-th file-system step that makes a write
    durable (an ``os.fsync``, ``os.replace`` or ``os.link``), before or after it (``when``);
    ``at=-1`` kills nothing. Every step is appended to ``log`` (``<n> <call> <file>``), so a
    test can count them and choose kill points spread over the writes of a run."""

    def __init__(self, at: int, log: str, when: str = "before") -> None:
        import os
        import signal

        self.count = 0
        out = open(log, "a")  # noqa: SIM115 (kept open for the life of the process)
        real = {name: getattr(os, name) for name in ("fsync", "replace", "link")}

        def step(name: str, target: str) -> None:
            out.write(f"{self.count} {name} {target}\n")
            out.flush()
            if self.count == at and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)

        def after() -> None:
            if self.count == at and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            self.count += 1

        def fsync(fd: int) -> None:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = "?"
            step("fsync", target)
            real["fsync"](fd)
            after()

        def two_paths(name: str):  # type: ignore[no-untyped-def]
            def call(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
                step(name, str(dst))
                real[name](src, dst, *args, **kwargs)
                after()

            return call

        os.fsync = fsync
        os.replace = two_paths("replace")
        os.link = two_paths("link")


class Sleep(pl.Callback):
    """Sleeps ``seconds`` after each training batch: a run slow enough to be signalled, requeued
    or cancelled mid-training, whatever the machine's speed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args: object) -> None:
        time.sleep(self.seconds)


class LogsTheDatabaseUrl(pl.Callback):
    """A forker's callback that logs a connection URL built from ``$DB_PASSWORD``: the kind of
    line that would leak a secret into ``train.log`` and the console."""

    def on_train_start(self, *args: object) -> None:
        password = os.environ.get("DB_PASSWORD", "")
        logging.getLogger(__name__).info("results go to db with password %s", password)


def last_weights(run: Path) -> dict[str, torch.Tensor]:
    """The weights in a run's ``checkpoints/last.ckpt``."""
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def learning_curve(run: Path) -> pd.DataFrame:
    """The epoch rows of a run's learning curves: train and val metrics, one row per epoch."""
    rows = pd.read_csv(run / "csv" / "metrics.csv")
    train = rows.dropna(subset=["train/loss"])[["epoch", "step", "train/loss"]]
    val = rows.dropna(subset=["val/loss"])[["epoch", "step", "val/loss"]]
    return pd.concat([train, val]).sort_values(["epoch", "step"]).reset_index(drop=True)


SMALL = 300  # samples of a generated dataset in quick tests


@functools.cache
def small_data(name: str) -> list[str]:
    """Overrides that make data option ``name`` small, for quick tests: ``data.samples=300``
    where the option generates its samples."""
    from omegaconf import OmegaConf

    from trainlab.runtime.configs import CONFIG_DIR

    node = OmegaConf.load(CONFIG_DIR / "data" / f"{name}.yaml")
    samples = node.get("samples") if isinstance(node, DictConfig) else None
    return [f"data.samples={SMALL}"] if isinstance(samples, int) and samples > SMALL else []


@functools.cache
def bundled_data() -> dict[str, str]:
    """The data options that set up with nothing given (no file, no download), each with its
    modality: what the every-net tests train on. Read from ``conf/data``, so a DataModule a
    fork adds is tested with no test edited."""
    from omegaconf import OmegaConf

    from tests.conftest import compose_cfg
    from trainlab.errors import ConfigError
    from trainlab.runtime.build import build_data
    from trainlab.runtime.configs import CONFIG_DIR

    found: dict[str, str] = {}
    names = sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml") if p.stem[0] != "_")
    with tempfile.TemporaryDirectory() as root:
        for name in names:
            cfg = compose_cfg("train", [f"data={name}", *small_data(name)], Path(root))
            if OmegaConf.missing_keys(cfg.data):
                continue  # the user's files: data.path=...
            try:
                found[name] = build_data(cfg).modality
            except ConfigError:
                continue  # files to download (mnist) that are not here
    return found
