"""Warm start: a job handed to ``python -m trainlab.warm`` runs as a fresh process would (same
metrics, same weights, same exit status), dies with its command, and a job the server cannot
run so is refused by name and runs cold."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from trainlab.runtime.warm import Server, runtime_key

RECORD_PID = [
    "+callbacks.pid._target_=tests.helpers.RecordPid",
    "+callbacks.pid.dirpath=${paths.output_dir}",
]
JOB = ["trainer.max_epochs=1", "callbacks.progress_bar=null", *RECORD_PID]
SENTINEL = "Warm-Sentinel-4e1d"  # a secret in a command's environment, handed to the server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A warm server of the test's own; the environment its commands must have (the server
    refuses any other), writing under ``tmp_path``."""
    runtime = Path(tempfile.mkdtemp(prefix="tw", dir="/tmp"))  # a socket path is short
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "TRAINLAB_ROOT": str(tmp_path),
        "WANDB_MODE": "offline",
    }
    env.pop("TRAINLAB_WARM", None)
    errors = (tmp_path / "server.err").open("w")
    warm = subprocess.Popen(
        [sys.executable, "-m", "trainlab.warm", "--idle-minutes", "3"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    try:
        assert warm.stdout is not None
        assert "listening" in warm.stdout.readline()
        assert list(runtime.glob("*/*.sock"))
        # A second server for the same environment does not take the first one's socket.
        second = subprocess.run(
            [sys.executable, "-m", "trainlab.warm"], env=env, capture_output=True, text=True
        )
        assert second.returncode != 0 and "already listens" in second.stderr
        yield env
        warm.terminate()
        assert warm.wait(timeout=60) == 0
        assert not list(runtime.glob("*/*.sock"))  # the server removed its socket
        assert SENTINEL not in warm.stdout.read() + (tmp_path / "server.err").read_text()
    finally:
        warm.kill()
        errors.close()
        shutil.rmtree(runtime, ignore_errors=True)


def command(
    env: dict[str, str], cwd: Path, *args: str, module: str = "trainlab.train"
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``python -m module args``; the result and the command's process id."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), process.pid


def test_a_warm_job_runs_in_the_servers_child_with_the_commands_streams_and_status(
    server: dict[str, str], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    # W&B's key is read at run time, so the server takes a command with its own; it reaches the
    # job's environment and nothing else.
    done, pid = command(
        {**server, "WANDB_API_KEY": SENTINEL}, tmp_path, *JOB, f"hydra.run.dir={run}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warm server not used" not in done.stderr
    assert int((run / "pid").read_text()) != pid  # trained in the server's child
    assert f"run directory: {run}" in done.stdout  # the child wrote to the command's stdout
    assert json.loads((run / "metrics.json").read_text())["metrics"]["test/acc"] > 0.5

    # A bad value: the child's one-line error on the command's stderr, its status the command's.
    bad, _ = command(server, tmp_path, "figures=maybe")
    assert bad.returncode == 2
    assert "figures must be auto, true or false" in bad.stderr

    # An environment variable read at import that differs: refused by name, run cold.
    other = {**server, "OMP_NUM_THREADS": "1"}
    cold, _ = command(other, tmp_path, "--help")
    assert cold.returncode == 0 and "python -m trainlab.train" in cold.stdout
    assert (
        "warm server not used: the environment differs from the server's in OMP_NUM_THREADS; "
        "starting cold" in cold.stderr
    )
    # A secret the server refuses is named, never shown.
    refused, _ = command({**server, "DB_PASSWORD": SENTINEL}, tmp_path, "--help")
    assert refused.returncode == 0 and "differs from the server's in DB_PASSWORD" in refused.stderr

    outputs = [done.stdout, done.stderr, bad.stdout, bad.stderr, refused.stdout, refused.stderr]
    assert not [o for o in outputs if SENTINEL in o]
    runtime = Path(server["XDG_RUNTIME_DIR"])
    written = [p for d in (tmp_path, runtime) for p in d.rglob("*") if p.is_file()]
    assert not [p for p in written if SENTINEL.encode() in p.read_bytes()]


@pytest.mark.slow
def test_a_warm_job_trains_the_weights_and_metrics_of_a_cold_one(
    server: dict[str, str], tmp_path: Path
) -> None:
    runs = {}
    for way, env in (("cold", {**server, "TRAINLAB_WARM": "0"}), ("warm", server)):
        runs[way] = tmp_path / way
        done, pid = command(
            env, tmp_path, *JOB, "trainer.max_epochs=3", f"hydra.run.dir={runs[way]}"
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert (int((runs[way] / "pid").read_text()) == pid) == (way == "cold")
    metrics = {w: json.loads((r / "metrics.json").read_text())["metrics"] for w, r in runs.items()}
    assert metrics["warm"] == metrics["cold"]
    weights = {
        w: torch.load(r / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for w, r in runs.items()
    }
    assert weights["warm"].keys() == weights["cold"].keys()
    assert all(torch.equal(weights["warm"][k], weights["cold"][k]) for k in weights["cold"])


@pytest.mark.slow
def test_a_killed_command_kills_its_warm_job(server: dict[str, str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["trainer.max_epochs=500", "callbacks.progress_bar=null", *RECORD_PID]
    process = subprocess.Popen(
        [sys.executable, "-m", "trainlab.train", *args, f"hydra.run.dir={run}"],
        env=server,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (run / "pid").is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int((run / "pid").read_text())
    assert child != process.pid
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_server_refuses_by_name_what_a_fresh_process_would_not_see(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks on a request, without a server process: the environment, the SLURM job,
    a module file changed since import."""
    server = Server(tmp_path / "s.sock", idle_seconds=1)
    server.started_env = {"OMP_NUM_THREADS": "2", "PATH": "/usr/bin", "SLURM_JOB_ID": "7"}
    module = tmp_path / "warm_probe.py"
    module.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import warm_probe  # noqa: F401

    server.imported = {"warm_probe": module.stat().st_mtime}
    # The threads of the pytest process are not the point here (a real server checks them).
    monkeypatch.setattr("trainlab.runtime.warm._untouched", lambda native_threads: None)
    request = {
        "env": {**server.started_env, "WANDB_API_KEY": "x", "SLURM_PROCID": "3"},
        "flags": list(sys.flags),
        "warnoptions": sys.warnoptions,
        "cwd": str(tmp_path / "empty"),
    }
    (tmp_path / "empty").mkdir()
    pid = os.getpid()
    assert server.refusal(request, pid) is None  # a job's own WANDB_ and SLURM_ keys are fine
    for env, named in [
        ({**request["env"], "OMP_NUM_THREADS": "1"}, "OMP_NUM_THREADS"),
        ({**request["env"], "LD_PRELOAD": "x.so"}, "LD_PRELOAD"),
        ({k: v for k, v in request["env"].items() if k != "PATH"}, "PATH"),
        ({**request["env"], "SLURM_JOB_ID": "8"}, "another SLURM job"),
    ]:
        assert named in (server.refusal({**request, "env": env}, pid) or "")
    assert "shadow" in (server.refusal({**request, "cwd": str(tmp_path)}, pid) or "")
    assert not server.stopping
    os.utime(module, (1, 1))
    assert "warm_probe changed since the server imported it" in (server.refusal(request, pid) or "")
    assert server.stopping  # and the server stops taking jobs
    assert runtime_key("SLURM_NODEID") and not runtime_key("PYTHONHASHSEED")
