"""trainlab's Optuna sweeper on current Optuna. One study, many workers: a global trial budget
on a journal file, on SQLite and on a real PostgreSQL server, failed trials recorded, a killed
worker's trial failed by its heartbeat, a study that continues after every worker stopped and
one made with Optuna 2 carried over. Pruning in the job, in-process and in joblib workers (the
SLURM workers are in test_slurm.py), with the pruned runs' curves kept and reported, and a
replay of an unpruned search through the pruner equal to the pruned search."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
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


def _study(storage: str, name: str = "shared") -> Any:
    import optuna

    from trainlab.sweeps.optuna import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(storage))


def _states(storage: str) -> list[str]:
    return [t.state.name for t in _study(storage).trials]


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
@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_two_workers_share_one_study(tmp_path: Path, kind: str) -> None:
    journal = str(tmp_path / "shared" / "study.journal")
    _check_shared_study(tmp_path, journal if kind == "journal" else f"sqlite:///{tmp_path}/s.db")


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
    # with no failure tolerated, the first failed trial ends the search
    strict = run_cli(
        "trainlab.train",
        *WORKER,
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'strict.db'}",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.max_failure_rate=0.0",
        *crash,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT)},
    )
    said = strict.stdout + strict.stderr
    assert strict.returncode == 1 and "more than max_failure_rate=0 allows" in said
    assert _states(f"sqlite:///{tmp_path / 'strict.db'}") == ["FAIL"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_a_trial_whose_worker_was_killed_leaves_the_budget(tmp_path: Path, kind: str) -> None:
    """A worker killed mid-trial leaves the trial RUNNING; once its heartbeats stop for the
    grace period, the next worker fails it and runs the whole budget (Optuna's heartbeat in a
    database, trainlab's in a journal, which has none)."""
    import time

    storage = str(tmp_path / "study.journal")
    if kind == "sqlite":
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


def test_sweep_overrides_become_optuna_distributions() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from trainlab.sweeps.optuna import configured_distribution, distributions, grid

    space, fixed = distributions(
        [
            "model.optimizer.lr=tag(log, interval(1e-4, 1e-2))",
            "net.dropout=interval(0.0, 0.5)",
            "data.batch_size=choice(32, 64)",
            "net.hidden=range(16, 64, 16)",
            "trainer.max_epochs=tag(log, interval(2, 32))",
            "seed=3",
        ]
    )
    assert space == {
        "model.optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "net.dropout": FloatDistribution(0.0, 0.5),
        "data.batch_size": CategoricalDistribution([32, 64]),
        "net.hidden": IntDistribution(16, 64, step=16),
        "trainer.max_epochs": FloatDistribution(2.0, 32.0, log=True),  # Hydra: intervals are floats
    }
    assert fixed == {"seed": "3"}
    assert configured_distribution(
        "x", {"type": "float", "low": 0.1, "high": 1.0, "log": True}
    ) == (FloatDistribution(0.1, 1.0, log=True))
    with pytest.raises(ValueError, match="must be int, float or categorical, got 'str'"):
        configured_distribution("x", {"type": "str"})
    assert grid({"a": space["net.hidden"], "b": space["data.batch_size"]}) == {
        "a": [16, 32, 48, 64],
        "b": [32, 64],
    }
    with pytest.raises(ValueError, match=r"GridSampler needs discrete values: net\.dropout"):
        grid({"net.dropout": space["net.dropout"]})


def test_an_unknown_storage_is_refused_by_name(tmp_path: Path) -> None:
    from trainlab.sweeps.optuna import open_storage

    with pytest.raises(ValueError, match=r"'redis://h/0': give a journal file path") as err:
        open_storage("redis://h/0")
    assert "postgresql://" in str(err.value)
    with pytest.raises(ValueError, match=r"'mongodb://u:\*\*\*@h/db'"):  # no password shown
        open_storage("mongodb://u:hunter2secret@h/db")


def test_a_journal_trial_without_heartbeats_fails_and_leaves_the_budget(tmp_path: Path) -> None:
    """The journal's heartbeat (Optuna has one for databases only): a RUNNING trial whose last
    beat is older than the grace period is failed, remembered as stale and not counted; one
    that beats stays."""
    import optuna

    from trainlab.sweeps.optuna import (
        HEARTBEAT_KEY,
        Settings,
        counted_trials,
        open_storage,
        record_heartbeat,
        trial_id,
    )

    storage = open_storage(str(tmp_path / "s.journal"))
    study = optuna.create_study(study_name="s", storage=storage)
    dead, alive = study.ask(), study.ask()
    storage.set_trial_system_attr(trial_id(storage, "s", dead.number), HEARTBEAT_KEY, 0.0)
    record_heartbeat(storage, "s", alive.number)
    assert counted_trials(study, storage, Settings(grace_seconds=60)) == 1
    assert [t.state.name for t in study.trials] == ["FAIL", "RUNNING"]
    assert counted_trials(study, storage, Settings(grace_seconds=60)) == 1  # counted once


def test_pruning_needs_a_validation_metric() -> None:
    from trainlab.sweeps.optuna import check_pruning

    check_pruning("val/acc", object())
    check_pruning("test/acc", None)  # no pruner: any metric
    with pytest.raises(ValueError, match="optimized_metric is 'test/acc'; the pruner compares"):
        check_pruning("test/acc", object())


PRUNED = [
    *WORKER,
    "hydra.sweeper.sampler.seed=0",
    "hydra/sweeper/pruner=median",
    "hydra.sweeper.pruner.n_startup_trials=1",
    "hydra.sweeper.pruner.n_warmup_steps=1",
    # one rate that learns, one that barely moves: the pruner has something to stop
    "hydra.sweeper.params={model.optimizer.lr:'choice(0.01,0.00001)'}",
    "trainer.max_epochs=5",
    "callbacks.early_stopping=null",
]


def _search(cwd: Path, *args: str) -> Path:
    """A search of 6 trials run in ``cwd``; its sweep directory."""
    result = run_cli(
        "trainlab.train", *args, "hydra.sweeper.n_trials=6", cwd=cwd, env={"PYTHONPATH": str(ROOT)}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (cwd / "logs" / "digits_mlp" / "multiruns").iterdir()
    return sweep


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "parallel"])
def test_a_pruned_trial_stops_early_keeps_its_curves_and_is_reported(
    tmp_path: Path, launcher: str
) -> None:
    parallel = (
        ["hydra/launcher=parallel", "hydra.sweeper.n_jobs=2"] if launcher == "parallel" else []
    )
    # sampler seeds whose trials draw both rates, the learning one first
    seed = "hydra.sweeper.sampler.seed=" + ("2" if parallel else "0")
    args = [seed if a.startswith("hydra.sweeper.sampler.seed=") else a for a in PRUNED]
    sweep = _search(tmp_path, *args, *parallel)
    study = _study(str(sweep / "optuna.journal"))
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert len(study.trials) == 6 and pruned, [t.state.name for t in study.trials]
    learns = [t for t in study.trials if t.params["model.optimizer.lr"] == 0.01]
    assert learns and all(t.state.name == "COMPLETE" for t in learns)  # never pruned
    for trial in pruned:
        assert trial.params["model.optimizer.lr"] == 1e-5  # the rate that does not learn
        run = sweep / str(trial.number)
        summary = json.loads((run / "metrics.json").read_text())
        assert summary["stop_reason"].startswith("pruned at epoch ")
        assert summary["epochs"] < 5 and summary["metrics"]["val/loss"] > 1.5
        curve = pd.read_csv(run / "csv" / "metrics.csv").dropna(subset=["val/loss"])
        assert len(curve) >= 2  # its epochs' curve, kept
        # the job fed the trial every epoch it trained, the validation after fit not counted
        assert sorted(trial.intermediate_values) == list(range(summary["epochs"]))
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            assert sorted(trial.intermediate_values) == list(range(5))
    report = run_cli("trainlab.report", str(sweep), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    text = (sweep / "report.md").read_text()
    assert f"{len(pruned)} pruned" in text and "## Tuning curve" in text


@pytest.mark.slow
def test_a_replay_of_the_unpruned_search_is_the_pruned_search_trial_for_trial(
    tmp_path: Path,
) -> None:
    from trainlab.experiments.replay import load_search, make_pruner, replay
    from trainlab.runtime.configs import CONFIG_DIR

    # TPE's start-up trials (all 6 here) are random draws whatever the scores, and training is
    # seeded: the pruned search runs the trials of the unpruned one, each stopped at some epoch
    sweeps = {}
    for pruner in ("none", "median"):
        args = [a for a in PRUNED if pruner != "none" or ".pruner." not in a]
        (tmp_path / pruner).mkdir()
        sweeps[pruner] = _search(
            tmp_path / pruner,
            *(f"hydra/sweeper/pruner={pruner}" if "sweeper/pruner=" in a else a for a in args),
            "hydra.sweeper.sampler.n_startup_trials=6",
        )
    search = load_search(sweeps["none"])
    outcome = replay(
        search, make_pruner("median:n_startup_trials=1:n_warmup_steps=1", CONFIG_DIR, 5)
    )
    study = _study(str(sweeps["median"] / "optuna.journal"))
    ran = {
        t.number: json.loads((sweeps["median"] / str(t.number) / "metrics.json").read_text())
        for t in study.trials
    }
    pruned = {n: r["epochs"] for n, r in ran.items() if r["stop_reason"].startswith("pruned")}
    assert pruned and outcome.stopped == pruned
    assert outcome.epochs == sum(r["epochs"] for r in ran.values()) < 6 * 5
    assert outcome.best == study.best_value


@pytest.mark.slow
def test_a_study_made_with_optuna_2_is_carried_over(tmp_path: Path) -> None:
    """tests/fixtures/optuna2_study.sql: an SQLite study of 3 trials written by Optuna 2.10.1
    (trainlab's Optuna before its own sweeper). Optuna refuses its schema and names the command
    that upgrades it; after ``optuna storage upgrade`` the study goes on within its budget."""
    import sqlite3

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as connection:
        connection.executescript((ROOT / "tests" / "fixtures" / "optuna2_study.sql").read_text())
    storage = f"sqlite:///{db}"
    args = [*WORKER, f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=4"]
    env = {"PYTHONPATH": str(ROOT)}
    refused = run_cli("trainlab.train", *args, cwd=tmp_path, env=env)
    assert refused.returncode != 0 and "optuna storage upgrade" in refused.stderr
    optuna_cli = Path(sys.executable).parent / "optuna"
    subprocess.run([optuna_cli, "storage", "upgrade", "--storage", storage], check=True)
    done = run_cli("trainlab.train", *args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "this worker ran 1 of the study's 4 trials" in done.stdout + done.stderr
    trials = _study(storage).trials
    assert [t.value for t in trials[:3]] == [0.5, 0.4, 0.3]  # Optuna 2's trials, intact
    assert trials[3].state.name == "COMPLETE" and set(trials[3].params) == set(trials[0].params)
