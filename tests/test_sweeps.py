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
