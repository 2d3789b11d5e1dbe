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
    outputs = [p.communicate(timeout=900)[0] for p in procs]
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


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free port; its URL."""
    with throwaway_postgres() as url:
        yield url


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(tmp_path: Path, postgres: str) -> None:
    _check_shared_study(tmp_path, postgres)
