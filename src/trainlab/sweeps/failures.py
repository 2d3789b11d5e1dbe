"""One job of a sweep fails alone; the sweep says so at its end.

Imported when Hydra starts (its callbacks are built before the job runs), so nothing heavy here.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from trainlab.trust.files import write_atomic
from trainlab.trust.run_dir import FAILURE, METRICS
from trainlab.trust.secrets import redact

log = logging.getLogger(__name__)
T = TypeVar("T")
FAILURE_FILE = FAILURE  # a failed job's record in its run directory
SHOWN = 5  # failures named in the summary line


def survive(job: Callable[[], T], output_dir: str | Path) -> T | None:
    """Run ``job``; if it raises (a bad value, a crash, out of memory), write the error and its
    traceback to ``<output_dir>/failure.json``, log it, and return None so that the sweep goes
    on. Ctrl-C still stops the sweep, and so does a job that failed because the sweep's output
    pipe was closed."""
    try:
        return job()
    except Exception as err:
        if (state := slurm_ending_this_job()) is not None:
            # e.g. a DDP peer on a node that was lost: SLURM ends (and may requeue) the job; a
            # failure recorded now would be a result for submitit, which then stops waiting
            log.warning("SLURM is ending this job (%s): %s: %s", state, type(err).__name__, err)
            raise SystemExit(1) from err
        record = {
            "status": "failed",
            "error": type(err).__name__,
            "message": str(err),
            "traceback": traceback.format_exc(),
        }
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / FAILURE_FILE, redact(json.dumps(record, indent=2)))
        if isinstance(err, BrokenPipeError) and (gone := output_gone()):
            # Not the job's fault: what read the sweep's output has gone (a pipe into `head`, a
            # closed session), and every later job would fail the same way, using up the budget.
            print(f"trainlab: the sweep stops: its {gone} was closed ({err})", file=sys.stderr)
            raise SystemExit(1) from err
        log.error(
            "job failed, the sweep goes on: %s: %s\n%s", record["error"], err, record["traceback"]
        )
        return None


def output_gone() -> str | None:
    """``stdout`` or ``stderr`` when that stream is a pipe whose reader has gone, else None."""
    import select

    poller = select.poll()
    for fd in (1, 2):
        poller.register(fd, 0)  # POLLERR and POLLHUP are always reported
    for fd, events in poller.poll(0):
        if events & (select.POLLERR | select.POLLHUP):
            return "stdout" if fd == 1 else "stderr"
    return None


def slurm_ending_this_job() -> str | None:
    """The state of this process's SLURM job where SLURM is ending it (``COMPLETING`` after a
    cancel or a lost node, ``PENDING`` once requeued ...); None when it runs, or outside SLURM."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job or os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return None
    try:
        shown = subprocess.run(
            ["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    state = next((f.split("=", 1)[1] for f in shown.split() if f.startswith("JobState=")), None)
    return None if state in (None, "RUNNING") else state


def summarize(sweep_dir: Path) -> tuple[str, bool]:
    """``"3 ok, 1 failed: job 2 (RuntimeError: ...)"`` for the jobs under ``sweep_dir``, and
    whether any failed."""
    jobs = sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    failed: list[str] = []
    unfinished: list[str] = []
    ok = 0
    for job in jobs:
        failure = job / FAILURE_FILE
        if failure.is_file():
            record: dict[str, Any] = json.loads(failure.read_text())
            first_line = str(record.get("message", "")).strip().splitlines()[:1]
            failed.append(f"job {job.name} ({record.get('error')}: {''.join(first_line)})")
        elif (job / METRICS).is_file():
            ok += 1
        else:
            unfinished.append(job.name)
    line = f"{ok} ok, {len(failed)} failed"
    if failed:
        more = f"; {len(failed) - SHOWN} more" if len(failed) > SHOWN else ""
        line += ": " + "; ".join(failed[:SHOWN]) + more + f" (each job's {FAILURE_FILE})"
    if unfinished:  # neither result: stopped from outside, or still running elsewhere
        more = f" and {len(unfinished) - SHOWN} more" if len(unfinished) > SHOWN else ""
        line += (
            f", {len(unfinished)} unfinished: job {', '.join(unfinished[:SHOWN])}{more} (no "
            f"metrics.json nor {FAILURE_FILE}; run the same command with resume=auto to finish)"
        )
    return line, bool(failed or unfinished)


class SweepSummary(Callback):
    """At the end of a multirun, prints one line for the whole sweep and exits with status 1
    when any job failed (each failure is in its job's ``failure.json``)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        line, any_failed = summarize(sweep_dir)
        print(f"sweep {sweep_dir}: {line}", file=sys.stderr if any_failed else sys.stdout)
        if any_failed:
            raise SystemExit(1)
