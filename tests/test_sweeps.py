"""Sweeps: launcher configs for a cluster and for this machine, and the summary of a sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import submitit
from hydra import compose, initialize_config_dir
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

from tests.conftest import ROOT, run_cli
from trainlab.runtime.configs import CONFIG_DIR
from trainlab.sweeps.failures import FAILURE_FILE, summarize

LAUNCHERS = {
    "slurm": "SlurmLauncher",
    "slurm_local": "LocalLauncher",
    "parallel": "JoblibLauncher",
}


def launcher(name: str, *overrides: str) -> dict[str, object]:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", [f"hydra/launcher={name}", *overrides], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert isinstance(params, dict)
    return {str(k): v for k, v in params.items()}


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_configs_compose(name: str) -> None:
    assert str(launcher(name)["_target_"]).endswith(LAUNCHERS[name])


def test_the_slurm_config_gives_the_sbatch_script_a_cluster_expects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What submitit would submit, built as Hydra's launcher builds it (no cluster here)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\n")  # submitit looks for srun on the PATH
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")
    params = launcher(
        "slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=4",
        "hydra.launcher.tasks_per_node=4",
        "hydra.launcher.setup=[module load cuda/12.4]",
    )
    params.pop("_target_"), params.pop("submitit_folder")
    executor = submitit.AutoExecutor(
        cluster="slurm", folder=tmp_path, slurm_max_num_timeout=params.pop("max_num_timeout")
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{k if k in base else f"slurm_{k}": v for k, v in params.items() if k != "name"},
        name="job",
    )
    script = executor._executor._make_submission_file_text("python -m trainlab.train", "uid")
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",  # one task per device: Lightning's DDP under SLURM
        "#SBATCH --time=240",
        "#SBATCH --signal=USR2@120",  # warned before the time limit, to requeue
        "module load cuda/12.4",
    ):
        assert line in script.splitlines(), line
    assert executor._executor.max_num_timeout == 3  # requeued up to 3 times


def test_the_summary_counts_finished_failed_and_unfinished_jobs(tmp_path: Path) -> None:
    for job in ("0", "1", "2", "10"):
        (tmp_path / job).mkdir()
    (tmp_path / "0" / "metrics.json").write_text("{}")
    (tmp_path / "10" / "metrics.json").write_text("{}")
    (tmp_path / "1" / FAILURE_FILE).write_text(
        json.dumps({"error": "ValueError", "message": "bad value\nmore lines"})
    )
    # job 2 never finished (stopped from outside): neither ok nor failed, and not a success
    line, failed = summarize(tmp_path)
    assert failed
    assert line == (
        "2 ok, 1 failed: job 1 (ValueError: bad value) (each job's failure.json), 1 unfinished: "
        "job 2 (no metrics.json nor failure.json; run the same command with resume=auto to finish)"
    )
    (tmp_path / "1" / FAILURE_FILE).unlink()
    (tmp_path / "1" / "metrics.json").write_text("{}")
    assert summarize(tmp_path)[1]  # only an unfinished job: the sweep did not succeed either
    (tmp_path / "2" / "metrics.json").write_text("{}")
    assert summarize(tmp_path) == ("4 ok, 0 failed", False)
    assert summarize(tmp_path / "0") == ("0 ok, 0 failed", False)


@pytest.mark.slow
def test_a_submitit_sweep_runs_each_job_in_a_process_of_its_own(tmp_path: Path) -> None:
    result = run_cli(
        "trainlab.train",
        "-m",
        "hydra/launcher=slurm_local",
        "seed=1,2",
        "trainer.max_epochs=1",
        "callbacks.progress_bar=null",
        "+callbacks.pid._target_=tests.helpers.RecordPid",
        "+callbacks.pid.dirpath=${paths.output_dir}",
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert ": 2 ok, 0 failed" in result.stdout
    (sweep,) = (tmp_path / "logs" / "digits_mlp" / "multiruns").iterdir()
    jobs = [sweep / "0", sweep / "1"]
    assert all((j / "metrics.json").is_file() for j in jobs)
    pids = {(j / "pid").read_text() for j in jobs}
    assert len(pids) == 2  # the basic launcher would run both in one process


class CountingLoader:
    """A config loader that composes ``{"overrides": [...], "n": k}`` and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def load_sweep_config(self, master_config: object, sweep_overrides: list[str]) -> object:
        self.calls.append(tuple(sweep_overrides))
        return OmegaConf.create({"overrides": sweep_overrides, "n": len(self.calls)})

    def get_sources(self) -> list[str]:
        return ["the wrapped loader's"]


def test_a_job_is_composed_once_for_the_check_and_its_launch() -> None:
    import pickle

    from trainlab.sweeps.grid import KEPT, ComposeOnce

    inner, master = CountingLoader(), OmegaConf.create({})
    loader = ComposeOnce(inner)  # type: ignore[arg-type]
    batch = [["seed=1"], ["seed=2"], ["seed=1"]]  # the same overrides twice: two jobs
    with loader.checking():  # the sweeper's check
        checked = [loader.load_sweep_config(master, o) for o in batch]
    launched = [loader.load_sweep_config(master, o) for o in batch]  # the launcher
    assert [c.overrides for c in launched] == batch
    assert [c.n for c in launched] == [1, 2, 3] and launched == checked
    assert len({id(c) for c in launched}) == 3  # each job a config of its own
    assert len(inner.calls) == 3 and loader.kept == {}
    # Handed over once: a request with nothing kept, or another master config, composes anew.
    assert loader.load_sweep_config(master, ["seed=1"]).n == 4
    assert loader.load_sweep_config(master, ["seed=1"]).n == 5
    assert loader.load_sweep_config(OmegaConf.create({}), ["seed=2"]).n == 6
    assert loader.kept == {}  # nothing is kept outside a check
    assert loader.get_sources() == ["the wrapped loader's"]  # the rest is the loader's
    # A launcher that ships the loader to its workers ships no kept configs, and the copy works.
    with loader.checking():
        loader.load_sweep_config(master, ["seed=9"])
    copy = pickle.loads(pickle.dumps(loader))
    assert copy.kept == {} and copy.load_sweep_config(master, ["seed=5"]).overrides == ["seed=5"]
    # Memory stays bounded in a batch of thousands.
    with loader.checking():
        for i in range(KEPT + 10):
            loader.load_sweep_config(master, [f"seed={i}"])
    assert sum(map(len, loader.kept.values())) <= KEPT


def test_the_default_sweeper_checks_the_batch_then_runs_each_job_as_composed(
    tmp_path: Path,
) -> None:
    base = ["-m", "trainer.max_epochs=1", "callbacks.progress_bar=null", "baselines=false"]
    bad = run_cli("trainlab.train", *base, "callbacks=default,no_such_set", cwd=tmp_path)
    assert bad.returncode != 0 and "no_such_set" in bad.stderr
    assert not (tmp_path / "logs").exists()  # no job ran, and nothing is left behind

    good = run_cli("trainlab.train", *base, "seed=1,2", "net.dropout=0.0,0.3", cwd=tmp_path)
    assert good.returncode == 0, good.stderr[-3000:]
    (sweep,) = (tmp_path / "logs" / "digits_mlp" / "multiruns").iterdir()
    assert "trainlab_sweeper.GridSweeper" in (sweep / "multirun.yaml").read_text()
    ran = []
    for job in sorted(sweep.glob("[0-9]*")):
        cfg = OmegaConf.load(job / "config.yaml")
        ran.append((cfg.seed, cfg.net.dropout))
    assert ran == [(1, 0.0), (1, 0.3), (2, 0.0), (2, 0.3)]

    # figures=auto: the jobs of a sweep save the numbers of their pictures, and draw none.
    jobs = sorted(sweep.glob("[0-9]*"))
    assert not list(sweep.glob("*/*.png"))
    assert all((j / "learning_curves.json").is_file() for j in jobs)
    from trainlab import figures

    assert figures.main([str(sweep)]) == 0
    for job in jobs:
        names = ("learning_curves.png", "reliability.png", "risk_coverage.png")
        assert all((job / name).stat().st_size > 10_000 for name in names)


@pytest.mark.slow
def test_a_sweep_whose_output_pipe_closes_stops_instead_of_failing_every_job(
    tmp_path: Path,
) -> None:
    """``python -m trainlab.train -m ... | head``: once the reader has gone, every later job
    would fail on its first print and use up the sweep (an Optuna budget with it)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRAINLAB_ROOT": str(tmp_path), "TRAINLAB_WARM": "0"}
    sweep = subprocess.Popen(
        [sys.executable, "-m", "trainlab.train", "-m", "seed=0,1,2,3", "trainer.max_epochs=1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert sweep.stdout is not None and sweep.stderr is not None
    sweep.stdout.read(1)  # what `head -c 1` reads, then it goes
    sweep.stdout.close()
    err = sweep.stderr.read()
    assert sweep.wait(timeout=300) == 1
    assert "the sweep stops: its stdout was closed" in err
    (found,) = (tmp_path / "logs" / "digits_mlp" / "multiruns").iterdir()
    assert sorted(p.name for p in found.iterdir() if p.is_dir()) == ["0"]  # no job after it
    assert json.loads((found / "0" / FAILURE_FILE).read_text())["error"] == "BrokenPipeError"
