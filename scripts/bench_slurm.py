"""What one SLURM job of a sweep costs beyond its training: ``python scripts/bench_slurm.py``.

Runs, on the SLURM cluster this machine submits to (scripts/slurm_cluster.sh starts one), sweeps
of one-epoch digits MLP jobs through ``hydra/launcher=slurm``, one job at a time
(``array_parallelism=1``), with trainlab's defaults and with what a sweep of thousands of tiny
jobs can switch off. For each it prints: the time per job as SLURM saw it (start to end); the
same job run directly, without SLURM; the imports alone (a fresh Python importing torch,
Lightning, Hydra and trainlab); and the sweep's time per job from submission to the last result
(what a user waits); and the time per run when one SLURM job runs them all in one process.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = [
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2",
    "hydra.launcher.array_parallelism=1",
]
RUN = ["trainer.max_epochs=1", "trainer.accelerator=cpu", "callbacks.progress_bar=null"]
LEAN = [
    "callbacks.calibration=null",
    "~callbacks.learning_curves",
    "~callbacks.dead_units",
    "~callbacks.gradient_health",
    "baselines=false",
]
VARIANTS = {"defaults": [], "lean": LEAN}


def _job_span(job_id: str) -> float:
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(f.split("=", 1) for f in shown.split() if "=" in f)
    start, end = (datetime.fromisoformat(fields[k]) for k in ("StartTime", "EndTime"))
    return (end - start).total_seconds()


def run(variant: list[str], jobs: int, cwd: Path) -> dict[str, float]:
    sweep = cwd / "sweep"
    seeds = ",".join(str(s) for s in range(1, jobs + 1))
    env = {**os.environ, "TRAINLAB_ROOT": str(cwd), "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", "trainlab.train", "-m", *LAUNCHER, *RUN, *variant]
    began = time.monotonic()
    done = subprocess.run(
        [*command, f"hydra.sweep.dir={sweep}", f"seed={seeds}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    waited = time.monotonic() - began
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    spans = []
    for n in range(jobs):
        slurm = (sweep / str(n) / "env.json").read_text()
        job_id = re.search(r'"SLURM_JOB_ID": "(\d+)"', slurm)
        assert job_id is not None
        spans.append(_job_span(job_id.group(1)))
    began = time.monotonic()
    direct = [sys.executable, "-m", "trainlab.train", *RUN, *variant, f"hydra.run.dir={cwd / 'd'}"]
    subprocess.run(direct, cwd=cwd, env=env, capture_output=True, check=True)
    alone = time.monotonic() - began
    return {
        "waited per job": waited / jobs,
        "SLURM job": statistics.mean(spans),
        "same job without SLURM": alone,
    }


def packed(variant: list[str], jobs: int, cwd: Path) -> float:
    """Seconds per run when one SLURM job runs all ``jobs`` runs in one process (imports once)."""
    seeds = ",".join(str(s) for s in range(1, jobs + 1))
    multirun = [sys.executable, "-m", "trainlab.train", "-m", *RUN, *variant, f"seed={seeds}"]
    command = " ".join([*multirun, f"hydra.sweep.dir={cwd / 'packed'}"])
    began = time.monotonic()
    subprocess.run(
        ["sbatch", "--wait", "--cpus-per-task=1", f"--chdir={cwd}", f"--wrap={command}"],
        check=True,
        capture_output=True,
        env={**os.environ, "TRAINLAB_ROOT": str(cwd)},
    )
    return (time.monotonic() - began) / jobs


def import_seconds() -> float:
    began = time.monotonic()
    modules = "torch, lightning.pytorch, hydra, trainlab.runtime.training"
    subprocess.run([sys.executable, "-c", f"import {modules}"], check=True)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=6)
    args = parser.parse_args()
    print(f"imports alone: {import_seconds():.1f} s")
    for name, variant in VARIANTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            found = run(variant, args.jobs, Path(tmp))
            found["per run, all in one SLURM job"] = packed(variant, args.jobs, Path(tmp))
        shown = ", ".join(f"{k} {v:.1f} s" for k, v in found.items())
        print(f"{name:9s} {shown}   ({' '.join(variant) or 'no overrides'})")


if __name__ == "__main__":
    main()
