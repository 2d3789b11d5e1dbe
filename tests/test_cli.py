"""The command line as a user runs it: start-up, errors, run directories, sweeps, DDP, trackers.

Each test starts fresh Python processes; the ones that train are marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, compose_cfg, run_cli
from trainlab.runtime.evaluation import evaluate

QUICK = ["trainer.max_epochs=2", "callbacks.progress_bar=null", "trainer.accelerator=cpu"]


def test_help_and_cfg_do_not_import_torch(tmp_path: Path) -> None:
    probe = (
        "import sys; from trainlab.train import main; sys.argv = ['train', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'lightning', 'wandb') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    for flag in (["--help"], ["--cfg", "job"]):
        out = subprocess.run(
            [sys.executable, "-c", probe, *flag],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=True,
        ).stdout
        assert "HEAVY []" in out, out[-500:]
    assert not (tmp_path / "logs").exists()


def test_two_runs_started_together_get_different_directories(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "trainlab.train", "--cfg", "all", "--resolve"]
    env = {"TRAINLAB_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")  # where the package is not installed
    procs = [
        subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    dirs = [yaml.safe_load(p.communicate()[0])["hydra"]["run"]["dir"] for p in procs]
    assert all(str(tmp_path / "logs" / "digits_mlp" / "runs") in d for d in dirs)
    assert dirs[0] != dirs[1]


@pytest.mark.slow  # two CLI runs: the slow suite (CI runs it)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["net=cnn", "data=wine"], "net trainlab.nets.CNN cannot read tabular data"),
        # found only once the data, the model and the callbacks are built
        (["callbacks.learning_check.patience=0"], "callbacks.learning_check.patience must be"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_leaves_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_cli("trainlab.train", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert f"trainlab: error: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()  # not even the empty folders above the run


@pytest.mark.slow
def test_default_run_reaches_97_percent(tmp_path: Path) -> None:
    result = run_cli("trainlab.train", "callbacks.progress_bar=null", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = Path(result.stdout.split("run directory: ")[1].splitlines()[0])
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert metrics["test/acc"] >= 0.97
    assert f"'test/acc': {round(metrics['test/acc'], 4)}" in result.stdout


@pytest.mark.slow
def test_cli_train_eval_predict(tmp_path: Path) -> None:
    train = run_cli("trainlab.train", "experiment=digits_cnn", *QUICK, cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-2000:]
    run_dir = train.stdout.split("run directory: ")[1].splitlines()[0]
    test_acc = json.loads((Path(run_dir) / "metrics.json").read_text())["metrics"]["test/acc"]
    evaluated = run_cli("trainlab.eval", f"run_dir={run_dir}", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert f"'test/acc': {round(test_acc, 4)}" in evaluated.stdout
    out = tmp_path / "preds.csv"
    predicted = run_cli("trainlab.predict", f"run_dir={run_dir}", f"output={out}", cwd=tmp_path)
    assert predicted.returncode == 0 and out.is_file()
    again = run_cli("trainlab.predict", f"run_dir={run_dir}", f"output={out}", cwd=tmp_path)
    assert again.returncode == 2 and "exists; choose another path" in again.stderr


def _job_dirs(tmp_path: Path) -> list[Path]:
    sweeps = list((tmp_path / "logs" / "digits_mlp" / "multiruns").iterdir())
    assert len(sweeps) == 1
    return sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())


@pytest.mark.slow
def test_basic_multirun(tmp_path: Path) -> None:
    result = run_cli("trainlab.train", "-m", "net.dropout=0.0,0.5", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = _job_dirs(tmp_path)
    assert [j.name for j in jobs] == ["0", "1"]
    dropouts = [yaml.safe_load((j / "config.yaml").read_text())["net"]["dropout"] for j in jobs]
    assert dropouts == [0.0, 0.5]
    assert all((j / "metrics.json").is_file() for j in jobs)


@pytest.mark.slow
def test_a_sweep_survives_a_failing_job_and_says_so(tmp_path: Path) -> None:
    result = run_cli(
        "trainlab.train",
        "-m",
        "+callbacks.fail._target_=tests.helpers.FailAt",
        "+callbacks.fail.epoch=9,9,1,9",  # job 2 raises when its second epoch starts
        *QUICK,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1
    summary = [line for line in result.stderr.splitlines() if line.startswith("sweep ")]
    assert len(summary) == 1
    assert summary[0].endswith(
        ": 3 ok, 1 failed: job 2 (RuntimeError: planned failure at epoch 1) "
        "(each job's failure.json)"
    )
    jobs = _job_dirs(tmp_path)
    assert [(j / "metrics.json").is_file() for j in jobs] == [True, True, False, True]
    failure = json.loads((jobs[2] / "failure.json").read_text())
    assert failure["error"] == "RuntimeError" and "FailAt" not in failure["message"]
    assert "in on_train_epoch_start\n    raise RuntimeError" in failure["traceback"]


@pytest.mark.slow
def test_optuna_sweep(tmp_path: Path) -> None:
    result = run_cli(
        "trainlab.train",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=2",
        *QUICK,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sweep = _job_dirs(tmp_path)[0].parent
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"model.optimizer.lr", "data.batch_size", "net.dropout"}
    losses = [
        json.loads((j / "metrics.json").read_text())["metrics"]["val/loss"]
        for j in _job_dirs(tmp_path)
    ]
    assert len(losses) == 3 and best["best_value"] == pytest.approx(min(losses))


def _ddp_records(folder: Path) -> list[dict[str, object]]:
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]


RECORD = "+callbacks.record._target_=tests.helpers.RecordRankWeights"


@pytest.mark.slow
@pytest.mark.parametrize(
    "data",
    [
        [],  # in-memory batches, sharded by the DataModule
        ["~data", "+data._target_=tests.forks.DigitsLoaders"],  # DataLoaders Lightning shards
    ],
    ids=["in-memory", "own-dataloaders"],
)
def test_ddp_cpu_ranks_end_with_identical_weights(tmp_path: Path, data: list[str]) -> None:
    result = run_cli(
        "trainlab.train",
        "trainer=ddp_cpu",
        *QUICK,
        *data,
        RECORD,
        f"+callbacks.record.dirpath={tmp_path / 'ranks'}",
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = _ddp_records(tmp_path / "ranks")
    assert first["world_size"] == second["world_size"] == 2
    assert first["weights"] == second["weights"]
    # 1,257 training samples: 629 per rank, 10 batches of 64 a rank and epoch (20 on one process)
    assert first["steps"] == second["steps"] == 2 * 10
    # Calibration reads whole splits on every rank: the numbers one process computes.
    run_dir = result.stdout.split("run directory: ")[1].splitlines()[0]
    # env.json names the threads each rank trained with (Lightning sets them after the start)
    ranks = json.loads((Path(run_dir) / "env.json").read_text())["ranks"]
    assert [r["threads"] for r in ranks] == [first["threads"], second["threads"]]
    report = json.loads((Path(run_dir) / "calibration.json").read_text())
    trust = "trust_targets=[tests.forks.DigitsLoaders]"  # the own DataModule, named
    single = evaluate(compose_cfg("eval", [f"run_dir={run_dir}", trust], tmp_path / "eval"))
    assert single["test/ece"] == pytest.approx(report["before"]["ece"], abs=1e-6)
    assert single["test/ece_calibrated"] == pytest.approx(report["after"]["ece"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["karate_gcn", "cycles_gin"])
def test_ddp_cpu_trains_graph_nets_alike_on_every_rank(tmp_path: Path, experiment: str) -> None:
    """One graph whose split is a node mask (each rank reads it whole), and many small graphs
    that Lightning's sampler shares out between the ranks."""
    result = run_cli(
        "trainlab.train",
        f"experiment={experiment}",
        "trainer=ddp_cpu",
        *QUICK,
        RECORD,
        f"+callbacks.record.dirpath={tmp_path / 'ranks'}",
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = _ddp_records(tmp_path / "ranks")
    assert first["world_size"] == 2 and first["weights"] == second["weights"]
    assert "test/acc" in result.stdout


@pytest.mark.slow
def test_ddp_inside_a_sweep_runs_each_job_once(tmp_path: Path) -> None:
    result = run_cli(
        "trainlab.train",
        "-m",
        "trainer=ddp_cpu",
        "net.dropout=0.1,0.2",
        *QUICK,
        RECORD,
        "+callbacks.record.dirpath=${paths.output_dir}/ranks",
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _job_dirs(tmp_path)
    assert [j.name for j in jobs] == ["0", "1"]  # a child re-running the sweep would add more
    for job, dropout in zip(jobs, (0.1, 0.2), strict=True):
        first, second = _ddp_records(job / "ranks")
        assert first["weights"] == second["weights"]
        assert first["dropout"] == second["dropout"] == [dropout, dropout]
    assert not (tmp_path / "logs" / "digits_mlp" / "runs").exists()


@pytest.mark.slow
def test_wandb_offline_run_holds_the_test_metrics(tmp_path: Path) -> None:
    result = run_cli(
        "trainlab.train",
        "logger=wandb",
        *QUICK,
        cwd=tmp_path,
        env={"WANDB_API_KEY": "", "WANDB_MODE": "", "NETRC": str(tmp_path / "none")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = Path(result.stdout.split("run directory: ")[1].splitlines()[0])
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    wandb_cli = Path(sys.executable).with_name("wandb")
    read = subprocess.run(
        [str(wandb_cli), "leet", "inspect", "--summary", "--json", str(offline[0])],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(read.stdout)
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert summary["state"] == "finished" and summary["name"] == "digits_mlp"
    for key in ("test/acc", "test/loss", "test/ece", "test/ece_calibrated"):
        assert summary["summary"][key] == pytest.approx(metrics[key], rel=1e-6)
    assert summary["summary"]["calibration/reliability"]["_type"] == "images/separated"


@pytest.mark.slow
def test_mlflow_logs_into_sqlite(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the optional mlflow extra is not installed")
    result = run_cli("trainlab.train", "logger=mlflow", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    import sqlite3

    with sqlite3.connect(tmp_path / "logs" / "mlflow.db") as db:
        keys = {row[0] for row in db.execute("select distinct key from metrics")}
    assert {"test/acc", "val/loss", "train/loss"} <= keys


@pytest.mark.slow
def test_ranks_agree_on_a_divergence_stop(tmp_path: Path) -> None:
    result = run_cli(
        "trainlab.train",
        "trainer=ddp_cpu",
        "trainer.max_epochs=5",
        "callbacks.progress_bar=null",
        "callbacks.early_stopping=null",
        RECORD,
        f"+callbacks.record.dirpath={tmp_path / 'ranks'}",
        "+callbacks.blow_up._target_=tests.helpers.BlowUpLearningRate",
        "+callbacks.blow_up.epoch=1",
        "+callbacks.blow_up.lr=1e4",
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]  # a stopped run is a result, not a crash
    first, second = _ddp_records(tmp_path / "ranks")
    assert first["steps"] == second["steps"] < 5 * 10
    run_dir = Path(result.stdout.split("run directory: ")[1].splitlines()[0])
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["stop_reason"].startswith("diverged at step")
    assert (run_dir / "checkpoints" / "last-good.ckpt").is_file()


def _wandb_run(run_dir: Path) -> dict:
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, offline
    wandb_cli = Path(sys.executable).with_name("wandb")
    read = subprocess.run(
        [str(wandb_cli), "leet", "inspect", "--summary", "--json", str(offline[0])],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(read.stdout)


def _run_dir(result: subprocess.CompletedProcess[str]) -> Path:
    return Path(result.stdout.split("run directory: ")[1].splitlines()[0])


@pytest.mark.slow
def test_a_resumed_run_continues_its_wandb_run_and_failures_are_marked(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "WANDB_API_KEY": "", "NETRC": str(tmp_path / "none")}
    wandb = ["logger=wandb", "callbacks.progress_bar=null", "trainer.max_epochs=4"]
    stop = ["+callbacks.stop._target_=tests.helpers.Interrupt", "+callbacks.stop.epochs=2"]
    first = run_cli("trainlab.train", *wandb, *stop, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    first_dir = _run_dir(first)
    ckpt = first_dir / "checkpoints" / "last.ckpt"
    resumed = run_cli("trainlab.train", *wandb, f"ckpt_path={ckpt}", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    one, two = _wandb_run(first_dir), _wandb_run(_run_dir(resumed))
    assert one["run_id"] == two["run_id"] == (first_dir / "wandb_id").read_text()
    assert two["state"] == "finished"

    blow_up = ["+callbacks.blow_up._target_=tests.helpers.BlowUpLearningRate"]
    blow_up += ["+callbacks.blow_up.epoch=1", "+callbacks.blow_up.lr=1e4"]
    diverged = run_cli("trainlab.train", *wandb, *blow_up, cwd=tmp_path, env=env)
    assert diverged.returncode == 0, diverged.stderr[-2000:]
    run = _wandb_run(_run_dir(diverged))
    assert "diverged" in run["tags"] and run["summary"]["stop_reason"].startswith("diverged")

    crash = ["+callbacks.crash._target_=tests.helpers.FailAt", "+callbacks.crash.epoch=1"]
    failed = run_cli("trainlab.train", "-m", *wandb, *crash, cwd=tmp_path, env=env)
    assert failed.returncode == 1  # the sweep of one job reports its failure
    job = next((tmp_path / "logs" / "digits_mlp" / "multiruns").iterdir()) / "0"
    run = _wandb_run(job)
    assert run["state"] == "failed" and run["exit_code"] == 1 and "failed" in run["tags"]


def test_marking_a_failed_wandb_run_never_hides_the_training_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When W&B is gone too (its service killed with a lost node), the callback says so and
    leaves the training error to be raised."""
    from lightning.pytorch.loggers import WandbLogger

    from trainlab.callbacks import WandbRunStatus

    class Gone(WandbLogger):
        @property
        def experiment(self) -> Any:
            raise ConnectionResetError("Connection lost")

    trainer = SimpleNamespace(is_global_zero=True, loggers=[Gone(save_dir=str(tmp_path))])
    WandbRunStatus().on_exception(trainer, None, RuntimeError("gloo: peer lost"))  # type: ignore[arg-type]
    assert (
        "could not mark the W&B run failed (ConnectionResetError: Connection lost)" in caplog.text
    )
