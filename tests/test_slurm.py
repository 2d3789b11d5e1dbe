"""The cluster path on a real SLURM scheduler (``scripts/slurm_cluster.sh start`` makes one;
CI makes one of two nodes, ``start --nodes 2``): a sweep as SLURM jobs, a requeued job and a job
stopped by its time limit that end with the weights of an uninterrupted run, DDP through ``srun``,
a throttled job array, a cancelled sweep resumed, and an Optuna study on PostgreSQL whose workers
are SLURM jobs. On two nodes also: DDP across them, a node lost mid-training, and a sweep and an
Optuna study spread over both. The tests that need two nodes skip on one.

Skipped, with the reason, where no SLURM answers. SLURM holds a requeued job for about two
minutes before it may start again (its begin time); the tests release such jobs at once with
``scontrol update StartTime=now``, which changes nothing else about them."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import ROOT, run_cli
from tests.helpers import last_weights, learning_curve, throwaway_postgres
from tests.test_optuna import PRUNED, WORKER, _ran, _states, _study

pytestmark = pytest.mark.slow

NAME = "trainlab-test"  # every job the tests submit: cancelled when a test ends
LAUNCHER = [
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    f"hydra.launcher.name={NAME}",
]
QUICK = ["trainer.accelerator=cpu", "callbacks.progress_bar=null"]
SLOW = ["callbacks.early_stopping=null", "+callbacks.sleep._target_=tests.helpers.Sleep"]
DOWN = r"down|drain|fail|unk|inval|future|not_resp"  # sinfo's states of a node that is not up
# One thread per rank whatever the layout: without OMP_NUM_THREADS Lightning gives each rank its
# node's CPUs divided by the ranks on that node, and layouts compared bit for bit would not match.
ENV = {
    "PYTHONPATH": str(ROOT),
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "OMP_NUM_THREADS": "1",
}


def _slurm_missing() -> str | None:
    if shutil.which("sbatch") is None:
        return "no SLURM here (no sbatch); scripts/slurm_cluster.sh starts a one-node cluster"
    try:
        found = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "SLURM does not answer (sinfo timed out)"
    if found.returncode != 0 or all(re.match(DOWN, s) for s in found.stdout.split()):
        return f"SLURM has no node up: {(found.stderr or found.stdout).strip()}"
    return None


@pytest.fixture(autouse=True)
def cluster() -> Iterator[None]:
    if reason := _slurm_missing():
        pytest.skip(reason)
    yield
    subprocess.run(["scancel", f"--name={NAME}"], check=False)


def _nodes() -> list[str]:
    """The names of the cluster's nodes that are up."""
    listed = subprocess.run(["sinfo", "-h", "-N", "-o", "%N|%T"], capture_output=True, text=True)
    rows = (line.split("|") for line in listed.stdout.split())
    return sorted({node for node, state in rows if not re.match(DOWN, state)})


def _controller() -> tuple[None, str, str | None]:
    """``(None, address, network)`` of the controller as the nodes reach it, for
    :func:`throwaway_postgres`: ``127.0.0.1`` and no network on a one-node cluster; the address in
    ``SlurmctldHost=host(address)`` and its /24 on a cluster of namespaced nodes."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    found = re.search(r"^SlurmctldHost\[0\]\s*=\s*\S+\(((\d+\.\d+\.\d+)\.\d+)\)", config, re.M)
    if found is None:
        return None, "127.0.0.1", None
    return None, found.group(1), f"{found.group(2)}.0/24"


def _two_nodes() -> list[str]:
    nodes = _nodes()
    if len(nodes) < 2:
        pytest.skip(f"one node up ({nodes}); scripts/slurm_cluster.sh start --nodes 2 makes two")
    return nodes[:2]


def _start(cwd: Path, *args: str, log: str = "sweep") -> subprocess.Popen[str]:
    """``python -m trainlab.train -m`` through the slurm launcher; output in ``cwd/<log>.*``."""
    env = {**os.environ, "TRAINLAB_ROOT": str(cwd), **ENV}
    command = [sys.executable, "-m", "trainlab.train", "-m", *LAUNCHER, *QUICK, *args]
    with open(cwd / f"{log}.out", "w") as out, open(cwd / f"{log}.err", "w") as err:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err, text=True)


def _queue(*fields: str) -> list[list[str]]:
    found = subprocess.run(
        ["squeue", "-h", "--array", f"--name={NAME}", "-o", "|".join(fields)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.split("|") for line in found.stdout.splitlines()]


def _release_requeued() -> None:
    for job, state, reason in _queue("%i", "%T", "%r"):
        if state == "PENDING" and reason == "BeginTime":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=False)


def _finish(proc: subprocess.Popen[str], cwd: Path, log: str = "sweep", limit: float = 600) -> str:
    """Wait for a sweep to end; its stdout and stderr."""
    deadline = time.monotonic() + limit
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the sweep ran past {limit} s: {_output(cwd, log)[-3000:]}")
        _release_requeued()
        time.sleep(1)
    return _output(cwd, log)


def _succeed(proc: subprocess.Popen[str], cwd: Path, log: str = "sweep") -> str:
    """Wait for a sweep that must end with exit status 0; its output."""
    output = _finish(proc, cwd, log)
    assert proc.returncode == 0, output[-3000:]
    return output


def _output(cwd: Path, log: str) -> str:
    return (cwd / f"{log}.out").read_text() + (cwd / f"{log}.err").read_text()


def _wait_for(condition: object, what: str, limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {limit} s for {what}")
        time.sleep(0.5)


def _epochs_done(job: Path) -> int:
    try:
        rows = pd.read_csv(job / "csv" / "metrics.csv")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return 0  # not there yet, or a row being appended
    return int(rows["train/loss"].notna().sum()) if "train/loss" in rows else 0


def _job(job_id: str) -> dict[str, str]:
    """What ``scontrol show job`` says of a job."""
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(field.split("=", 1) for field in shown.split() if "=" in field)


def _slurm(job: Path) -> dict[str, str]:
    return json.loads((job / "env.json").read_text())["slurm"]


def _log_times(job: Path) -> tuple[datetime, datetime]:
    stamps = re.findall(
        r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", (job / "train.log").read_text(), re.M
    )
    first, last = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in (stamps[0], stamps[-1]))
    return first, last


def _same_run(job: Path, reference: Path) -> None:
    """``job`` ended with ``reference``'s weights and learning curve, each epoch once."""
    weights, expected = last_weights(job), last_weights(reference)
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    pd.testing.assert_frame_equal(learning_curve(job), learning_curve(reference))


def test_a_sweep_runs_as_slurm_jobs_and_is_reported(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # seed=-1 is refused by the job: it fails once, and the other jobs go on
    proc = _start(tmp_path, f"hydra.sweep.dir={sweep}", "trainer.max_epochs=1", "seed=1,2,-1")
    output = _finish(proc, tmp_path)
    assert proc.returncode == 1, output[-3000:]
    assert "2 ok, 1 failed: job 2 (ConfigError: seed must be a non-negative integer" in output
    assert "Bypassing sacct" not in output  # no accounting here: said once, not at every poll
    assert output.count("reading job states with squeue") == 1
    ids = [_slurm(sweep / str(n)) for n in (0, 1)]
    assert ids[0]["SLURM_ARRAY_JOB_ID"] == ids[1]["SLURM_ARRAY_JOB_ID"]
    assert [i["SLURM_ARRAY_TASK_ID"] for i in ids] == ["0", "1"]
    assert ids[0]["SLURM_JOB_ID"] != ids[1]["SLURM_JOB_ID"]
    assert (sweep / "2" / "failure.json").is_file()
    failed = f"{ids[0]['SLURM_ARRAY_JOB_ID']}_2"
    _wait_for(lambda: _job(failed)["JobState"] not in ("RUNNING", "COMPLETING"), "job 2's end")
    assert _job(failed)["JobState"] == "COMPLETED"  # its failure is in failure.json
    assert _job(failed)["Restarts"] == "0"  # it failed once and was not requeued
    # nothing written outside the sweep directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep", "sweep.err", "sweep.out"]
    report = run_cli("trainlab.report", str(sweep), cwd=tmp_path, env=ENV)
    assert report.returncode == 0, report.stderr[-2000:]
    table = pd.read_csv(sweep / "report.csv")
    assert len(table) == 3 and table["test/acc"].notna().sum() == 2


def test_a_requeued_job_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    """``scontrol requeue`` of a running job (what an admin or a preemption does): job 0 is
    requeued mid-training; job 1, the same run but for a shorter sleep, is not."""
    sweep = tmp_path / "sweep"
    args = [f"hydra.sweep.dir={sweep}", "logger=many", "trainer.max_epochs=5", *SLOW]
    proc = _start(tmp_path, *args, "+callbacks.sleep.seconds=0.3,0.05")
    _wait_for(lambda: _epochs_done(sweep / "0") >= 2, "two epochs of job 0")
    (job,) = [j for j, *_ in _queue("%i") if j.endswith("_0")]
    subprocess.run(["scontrol", "requeue", job], check=True)
    output = _succeed(proc, tmp_path)
    assert "2 ok, 0 failed" in output
    requeued, straight = sweep / "0", sweep / "1"
    assert _slurm(requeued)["SLURM_RESTART_COUNT"] == "1"
    assert "resume=auto: continuing" in (requeued / "train.log").read_text()
    assert not (requeued / "failure.json").exists()
    _same_run(requeued, straight)
    run_id = (requeued / "wandb_id").read_text().strip()
    runs = sorted((requeued / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(f"-{run_id}") for r in runs)  # one W&B run


def test_a_job_at_its_time_limit_is_requeued_and_finishes(tmp_path: Path) -> None:
    """SLURM signals the job (USR2, ``signal_delay_s`` before its 2-minute limit); training
    stops at the next step with last.ckpt written, submitit requeues, the job resumes. The same
    run without a time limit, as a second sweep at the same time, is the reference."""
    args = ["trainer.max_epochs=8", *SLOW, "+callbacks.sleep.seconds=0.3", "seed=1"]
    limit = ["hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=60"]
    limited = _start(
        tmp_path, f"hydra.sweep.dir={tmp_path / 'limited'}", *limit, *args, log="limited"
    )
    reference = _start(tmp_path, f"hydra.sweep.dir={tmp_path / 'ref'}", *args, log="ref")
    for proc, log in ((limited, "limited"), (reference, "ref")):
        _succeed(proc, tmp_path, log)
    job = tmp_path / "limited" / "0"
    text = (job / "train.log").read_text()
    assert "SLURM signal SIGUSR2: stopping at the next step to requeue" in text
    steps = [int(s) for s in re.findall(r"resume=auto: continuing .* \(step (\d+)\)", text)]
    assert steps and steps[0] > 0, text[-3000:]  # last.ckpt where training stood
    assert int(_slurm(job)["SLURM_RESTART_COUNT"]) == len(steps)
    _same_run(job, tmp_path / "ref" / "0")


def test_ddp_ranks_from_srun_end_with_identical_weights(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = _start(
        tmp_path,
        f"hydra.sweep.dir={sweep}",
        "hydra.launcher.tasks_per_node=2",
        "trainer=ddp_cpu",
        "trainer.max_epochs=2",
        "+callbacks.record._target_=tests.helpers.RecordRankWeights",
        "+callbacks.record.dirpath=${paths.output_dir}/ranks",
    )
    _succeed(proc, tmp_path)
    first, second = (
        json.loads((sweep / "0" / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)
    )
    assert first["world_size"] == second["world_size"] == 2
    assert first["weights"] == second["weights"]
    script = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --ntasks-per-node=2" in script and "srun" in script


RECORD = [
    "+callbacks.record._target_=tests.helpers.RecordRankWeights",
    "+callbacks.record.dirpath=${paths.output_dir}/ranks",
]
ACROSS = [  # DDP over two nodes, one process on each
    "hydra.launcher.nodes=2",
    "hydra.launcher.tasks_per_node=1",
    "trainer=ddp_cpu",
    "trainer.devices=1",
    "trainer.num_nodes=2",
]
ON_ONE = ["hydra.launcher.tasks_per_node=2", "trainer=ddp_cpu"]  # two processes on one node


def _rank_weights(job: Path) -> list[str]:
    return [json.loads((job / "ranks" / f"rank{r}.json").read_text())["weights"] for r in (0, 1)]


def _one_wandb_run(job: Path, starts: int = 1) -> None:
    run_id = (job / "wandb_id").read_text().strip()
    runs = sorted((job / "wandb").glob("offline-run-*"))
    assert len(runs) == starts and all(r.name.endswith(f"-{run_id}") for r in runs), runs


def test_ddp_across_two_nodes_ends_as_ddp_on_one(tmp_path: Path) -> None:
    """Ranks on two hosts: one run directory that names both hosts, one W&B run, and weights
    equal on both ranks and bit for bit equal to two processes on one node."""
    nodes = _two_nodes()
    common = ["trainer.max_epochs=2", "logger=many", *RECORD]
    across = _start(tmp_path, f"hydra.sweep.dir={tmp_path / 'across'}", *ACROSS, *common)
    one = _start(tmp_path, f"hydra.sweep.dir={tmp_path / 'one'}", *ON_ONE, *common, log="one")
    _succeed(across, tmp_path)
    _succeed(one, tmp_path, "one")
    job = tmp_path / "across" / "0"
    ranks = json.loads((job / "env.json").read_text())["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert sorted(r["hostname"] for r in ranks) == nodes  # a rank on each host
    assert [r["node"] for r in ranks] == [r["hostname"] for r in ranks]
    on_one = json.loads((tmp_path / "one" / "0" / "env.json").read_text())["ranks"]
    assert len(on_one) == 2
    assert [r["threads"] for r in ranks] == [r["threads"] for r in on_one] == [1, 1]
    weights = _rank_weights(job)
    assert weights[0] == weights[1] == _rank_weights(tmp_path / "one" / "0")[0]
    runs = [p.parent for p in (tmp_path / "across").rglob("metrics.json")]
    assert runs == [job]  # one run directory, written by rank 0
    _one_wandb_run(job)


def test_a_node_lost_mid_training_requeues_the_job_to_the_uninterrupted_result(
    tmp_path: Path,
) -> None:
    """DDP over two nodes; after two epochs one node is lost (every process on it killed and
    SLURM told it is down). SLURM requeues the job; once the node is back the job continues in its
    own directory from its last.ckpt and ends with the weights and learning curve of the same run
    uninterrupted (two processes on the other node, the reference)."""
    nodes = _two_nodes()
    if os.geteuid() != 0:
        pytest.skip("losing a node (scripts/slurm_cluster.sh kill-node) needs root")
    args = [
        "trainer.max_epochs=6",
        "logger=many",
        *SLOW,
        "callbacks.last_checkpoint.every_seconds=0",
    ]
    lost = _start(
        tmp_path,
        f"hydra.sweep.dir={tmp_path / 'lost'}",
        *ACROSS,
        *args,
        "+callbacks.sleep.seconds=0.5",
    )
    reference = _start(
        tmp_path,
        f"hydra.sweep.dir={tmp_path / 'ref'}",
        *ON_ONE,
        f"+hydra.launcher.additional_parameters.nodelist={nodes[0]}",
        *args,
        "+callbacks.sleep.seconds=0.05",
        log="ref",
    )
    job = tmp_path / "lost" / "0"
    _wait_for(lambda: _epochs_done(job) >= 2, "two epochs of the job")
    script = ROOT / "scripts" / "slurm_cluster.sh"
    job_id = _slurm(job)["SLURM_JOB_ID"]
    subprocess.run([script, "kill-node", nodes[1]], check=True, capture_output=True)
    try:
        _wait_for(lambda: _job(job_id)["JobState"] == "PENDING", "the job's requeue", 120)
    finally:
        subprocess.run([script, "revive-node", nodes[1]], check=True, capture_output=True)
    output = _succeed(lost, tmp_path)
    _succeed(reference, tmp_path, "ref")
    assert "1 ok, 0 failed" in output
    assert _slurm(job)["SLURM_RESTART_COUNT"] == "1"
    assert "resume=auto: continuing" in (job / "train.log").read_text()
    _same_run(job, tmp_path / "ref" / "0")
    hosts = sorted(r["hostname"] for r in json.loads((job / "env.json").read_text())["ranks"])
    assert hosts == nodes
    _one_wandb_run(job, starts=2)


def test_a_sweep_spreads_over_both_nodes(tmp_path: Path) -> None:
    nodes = _two_nodes()
    sweep = tmp_path / "sweep"
    seeds = ",".join(str(s) for s in range(1, 9))
    proc = _start(tmp_path, f"hydra.sweep.dir={sweep}", "trainer.max_epochs=1", f"seed={seeds}")
    assert "8 ok, 0 failed" in _succeed(proc, tmp_path)
    hosts = [json.loads((sweep / str(n) / "env.json").read_text())["hostname"] for n in range(8)]
    assert sorted(set(hosts)) == nodes, hosts


def test_a_job_array_runs_no_more_jobs_at_once_than_its_parallelism(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = _start(
        tmp_path,
        f"hydra.sweep.dir={sweep}",
        "hydra.launcher.array_parallelism=1",
        "trainer.max_epochs=1",
        "seed=1,2,3,4",
    )
    output = _succeed(proc, tmp_path)
    assert "4 ok, 0 failed" in output
    script = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --array=0-3%1" in script
    spans = sorted(_log_times(sweep / str(n)) for n in range(4))
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))  # one at a time


def test_a_cancelled_sweep_resumes_when_run_again(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [f"hydra.sweep.dir={sweep}", "resume=auto", "trainer.max_epochs=4", *SLOW]
    args += ["+callbacks.sleep.seconds=0.2", "seed=1,2"]
    proc = _start(tmp_path, *args)
    _wait_for(lambda: all(_epochs_done(sweep / n) >= 1 for n in "01"), "an epoch of each job")
    subprocess.run(["scancel", f"--name={NAME}"], check=True)
    _finish(proc, tmp_path)
    assert proc.returncode != 0
    assert not any((sweep / n / "metrics.json").exists() for n in "01")
    again = _start(tmp_path, *args, log="again")  # the same command
    output = _succeed(again, tmp_path, "again")
    assert "2 ok, 0 failed" in output
    for n in "01":
        assert "resume=auto: continuing" in (sweep / n / "train.log").read_text()
        assert json.loads((sweep / n / "metrics.json").read_text())["epochs"] == 4


@pytest.mark.parametrize("kind", ["journal", "postgresql"])
def test_optuna_workers_as_slurm_jobs_share_one_budget(tmp_path: Path, kind: str) -> None:
    """Two workers, each a SLURM job (on a node each where the cluster has two), on one
    journal file of the shared file system or one PostgreSQL database."""
    nodes = _nodes()
    jobs = []
    # the workers reach the database at the controller's address, as every node does
    with contextlib.ExitStack() as stack:
        storage = str(tmp_path / "studies" / "shared.journal")
        if kind == "postgresql":
            storage = stack.enter_context(throwaway_postgres(*_controller()))
        for i in range(2):
            cwd = tmp_path / f"worker{i}"
            cwd.mkdir()
            worker = [*WORKER, f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=6"]
            command = " ".join([sys.executable, "-m", "trainlab.train", *worker])
            where = [f"--nodelist={nodes[i]}"] if len(nodes) >= 2 else []
            submitted = subprocess.run(
                [
                    "sbatch",
                    "--parsable",
                    f"--job-name={NAME}",
                    "--cpus-per-task=1",
                    *where,
                    f"--chdir={cwd}",
                    f"--output={cwd / 'worker.log'}",
                    f"--export=ALL,TRAINLAB_ROOT={cwd},PYTHONPATH={ROOT}",
                    f"--wrap=exec {command}",
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            jobs.append(submitted.stdout.strip().split(";")[0])
        _wait_for(lambda: not _queue("%i"), "the workers' jobs", limit=400)
        outputs = [(tmp_path / f"worker{i}" / "worker.log").read_text() for i in range(2)]
        assert _states(storage) == ["COMPLETE"] * 6, "\n".join(o[-2000:] for o in outputs)
        assert sum(_ran(outputs)) == 6 and min(_ran(outputs)) >= 1
    if len(nodes) >= 2:
        assert [_job(j)["NodeList"] for j in jobs] == nodes[:2]


def test_trials_as_slurm_jobs_are_pruned(tmp_path: Path) -> None:
    """The sweeper here, each trial a SLURM job: the job opens the study (the sweep's journal
    on the shared file system), feeds it every epoch and stops when the pruner says so."""
    sweep = tmp_path / "sweep"
    args = [a for a in PRUNED if not a.startswith("callbacks.progress_bar")]
    proc = _start(tmp_path, f"hydra.sweep.dir={sweep}", *args, "hydra.sweeper.n_trials=4")
    output = _succeed(proc, tmp_path)
    study = _study(str(sweep / "optuna.journal"))
    states = [t.state.name for t in study.trials]
    assert len(states) == 4 and "PRUNED" in states, output[-3000:]
    for trial in study.trials:
        summary = json.loads((sweep / str(trial.number) / "metrics.json").read_text())
        assert _slurm(sweep / str(trial.number))["SLURM_JOB_ID"]  # each ran as a SLURM job
        assert sorted(trial.intermediate_values) == list(range(summary["epochs"]))
        if trial.state.name == "PRUNED":
            assert summary["stop_reason"].startswith("pruned at epoch ")


def test_no_secret_reaches_a_file_a_slurm_sweep_writes(tmp_path: Path) -> None:
    """A password read through ${oc.env:} and an API key given on the command line: neither is
    in any file of the sweep (submitit's pickles and job logs, W&B's offline runs, Hydra's
    copies of the overrides) nor in its console output. (SLURM itself keeps each job's
    environment in its own state directory, as it does for every job it runs.)"""
    in_env, in_value = "Env-Sentinel-Slurm-4e1d", "Key-Sentinel-Slurm-b07c"
    sweep = tmp_path / "sweep"
    os.environ["DB_PASSWORD"] = in_env  # the job inherits it from the submitting process
    try:
        proc = _start(
            tmp_path,
            f"hydra.sweep.dir={sweep}",
            "trainer.max_epochs=1",
            "seed=1,2",
            "logger=many",
            "+db.password=${oc.env:DB_PASSWORD}",
            f"+tracker.api_key={in_value}",
        )
        output = _succeed(proc, tmp_path)
    finally:
        del os.environ["DB_PASSWORD"]
    written = [p for p in sweep.rglob("*") if p.is_file()]
    assert any(".submitit" in p.parts and p.suffix == ".pkl" for p in written)
    assert any(p.suffix == ".wandb" for p in written) and any(
        p.name == "hydra.yaml" for p in written
    )
    hits = [
        f"{p}: {s}" for p in written for s in (in_env, in_value) if s.encode() in p.read_bytes()
    ]
    assert hits == [], hits
    assert in_env not in output and in_value not in output
