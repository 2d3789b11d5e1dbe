"""One Optuna study, many workers: a global trial budget on SQLite and on a real PostgreSQL
server, failed trials recorded, and a study that continues after every worker stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.helpers import throwaway_postgres

WORKER = [
    "hparams_search=optuna",
    "trainer.max_epochs=1",
    "callbacks.progress_bar=null",
    "hydra.sweeper.study_name=shared",
]


def _workers(tmp_path: Path, storage: str, budget: int, count: int, *extra: str) -> list[str]:
    """Start ``count`` workers together on one study; each in a directory of its own."""
    procs = []
    for i in range(count):
        cwd = tmp_path / f"worker{i}"
        cwd.mkdir(exist_ok=True)
        args = [*WORKER, f"hydra.sweeper.storage={storage}", f"hydra.sweeper.n_trials={budget}"]
        env = {**os.environ, "TRAINLAB_ROOT": str(cwd), "PYTHONPATH": str(ROOT)}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "trainlab.train", *args, *extra],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    try:  # a worker that never ends (a budget that never shrinks) fails the test
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-2000:] for o in outputs)
    return outputs


def _states(storage: str) -> list[str]:
    import optuna

    study = optuna.load_study(study_name="shared", storage=storage)
    return [t.state.name for t in study.trials]


def _ran(outputs: list[str]) -> list[int]:
    return [int(o.split("this worker ran ")[1].split()[0]) for o in outputs]


def _check_shared_study(tmp_path: Path, storage: str) -> None:
    outputs = _workers(tmp_path, storage, budget=6, count=2)
    assert _states(storage) == ["COMPLETE"] * 6  # the global budget, not 6 per worker
    assert sum(_ran(outputs)) == 6 and min(_ran(outputs)) >= 1  # both took part
    # Every worker stopped; started again with a larger budget, the study continues.
    again = _workers(tmp_path, storage, budget=8, count=1)
    assert _ran(again) == [2] and len(_states(storage)) == 8


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tmp_path: Path) -> None:
    _check_shared_study(tmp_path, f"sqlite:///{tmp_path / 'study.db'}")


@pytest.mark.slow
def test_a_trial_whose_run_crashed_is_recorded_as_failed(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    crash = ["+callbacks.crash._target_=tests.helpers.FailAt", "+callbacks.crash.epoch=0"]
    result = run_cli(
        "trainlab.train",
        *WORKER,
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_trials=2",
        *crash,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1  # the sweep says some jobs failed
    assert "2 ok" not in result.stderr and "2 failed" in result.stderr
    assert _states(storage) == ["FAIL", "FAIL"]


@pytest.mark.slow
def test_a_trial_whose_worker_was_killed_leaves_the_budget(tmp_path: Path) -> None:
    """A worker killed mid-trial leaves the trial RUNNING; once its heartbeats stop for the
    grace period, the next worker fails it and runs the whole budget."""
    import time

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    quick = ["shared_study.heartbeat_seconds=1", "shared_study.grace_seconds=2"]
    kill = ["+callbacks.kill._target_=tests.helpers.SignalAt", "+callbacks.kill.epoch=0"]
    kill += ["+callbacks.kill.batch=3", "+callbacks.kill.signal=SIGKILL"]
    args = [*WORKER, f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=2", *quick]
    env = {"PYTHONPATH": str(ROOT)}
    killed = run_cli("trainlab.train", *args, *kill, cwd=tmp_path, env=env, timeout=300)
    assert killed.returncode == -9 and _states(storage) == ["RUNNING"]
    time.sleep(4)  # past the grace period
    (output,) = _workers(tmp_path, storage, 2, 1, *quick)
    assert "trial 0 failed: its worker stopped sending heartbeats" in output
    assert _ran([output]) == [2] and _states(storage) == ["FAIL", "COMPLETE", "COMPLETE"]


@pytest.mark.slow
def test_a_lock_held_too_long_is_named(tmp_path: Path) -> None:
    import fcntl

    db = tmp_path / "study.db"
    args = [*WORKER, f"hydra.sweeper.storage=sqlite:///{db}", "hydra.sweeper.n_trials=1"]
    with open(f"{db}.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = run_cli(
            "trainlab.train",
            *args,
            "shared_study.lock_timeout_seconds=1",
            cwd=tmp_path,
            timeout=120,
        )
    assert done.returncode != 0
    assert f"waited 1 s for the study's lock {db}.lock; another worker holds it" in done.stderr


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free port; its URL."""
    with throwaway_postgres() as url:
        yield url


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(tmp_path: Path, postgres: str) -> None:
    _check_shared_study(tmp_path, postgres)
