"""The jobs of a ``hydra/launcher=slurm`` sweep: who requeues them, how a requeued job resumes,
and how their states are read on a cluster without accounting.

One owner requeues: submitit. Its sbatch script asks SLURM for a signal (``USR2``,
``signal_delay_s`` before the time limit) and its handler requeues the job with
``scontrol requeue``, at most ``max_num_timeout`` times for time limits. Lightning's own SLURM
requeue (``SIGUSR1``, ``hpc_ckpt_*.ckpt``) is switched off in every SLURM job
(:func:`cluster_environment`). Before submitit requeues, :func:`stop_then_requeue` stops training
as ``SIGTERM`` does: at the next batch boundary, ``last.ckpt`` written where it stands. A job run
again (by submitit, by ``scontrol requeue`` or by a preemption) continues in its own directory
(:func:`requeued_overrides` adds ``resume=auto``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

from submitit.slurm.slurm import SlurmInfoWatcher

log = logging.getLogger(__name__)

GONE = "GONE"  # no longer listed by squeue (SLURM forgets a job MinJobAge seconds after it ends)
# squeue's states that submitit takes for "still going"; squeue's others that are not an end
# (CONFIGURING, SUSPENDED, REQUEUE_HOLD ...) are read as RUNNING.
GOING = {"READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED"}
ENDED = {
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
    "REVOKED", "SPECIAL_EXIT", "TIMEOUT",
}  # fmt: skip


def in_submitit_job() -> bool:
    """Whether this process runs a job that submitit submitted to SLURM."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm"


def restart_count() -> int:
    """How many times SLURM has started this job before (0 on the first attempt)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    except ValueError:
        return 0


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def requeued_overrides(overrides: Sequence[str]) -> list[str]:
    """The job's overrides, with ``resume=auto`` when SLURM runs it again: a requeued job is the
    same job and continues from its ``last.ckpt`` (``overwrite=true`` would restart it)."""
    if restart_count() == 0:
        return list(overrides)
    kept = [o for o in overrides if _key(o) not in ("resume", "overwrite")]
    log.info("SLURM restart %d of this job: continuing it with resume=auto", restart_count())
    return [*kept, "resume=auto"]


def cluster_environment() -> Any | None:
    """Lightning's SLURM environment with its requeue switched off, in a SLURM job (None
    elsewhere): submitit requeues, and one owner is enough."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return None
    return SLURMEnvironment(auto_requeue=False)


def _requeue_signal() -> signal.Signals:
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")  # submitit's own setting
    return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]


@contextmanager
def stop_then_requeue() -> Iterator[None]:
    """In a submitit job: on submitit's signal, stop training as ``SIGTERM`` does (Lightning
    stops at the next batch boundary and ``LatestCheckpoint`` writes ``last.ckpt``), then let
    submitit's handler requeue the job. Outside ``trainer.fit`` (data loading, testing) the
    signal goes straight to submitit's handler, as without trainlab."""
    if not in_submitit_job():
        yield
        return
    usr = _requeue_signal()
    requeue = signal.getsignal(usr)  # submitit's checkpoint_and_try_requeue
    untrained = signal.getsignal(signal.SIGTERM)  # submitit's: logs and ignores SIGTERM
    caught: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        if caught:
            return
        caught.append(signum)
        if signal.getsignal(signal.SIGTERM) is untrained:  # not training: submitit as usual
            if callable(requeue):
                requeue(signum, frame)
            return
        log.warning("SLURM signal %s: stopping at the next step to requeue", usr.name)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(usr, stop)
    try:
        yield
    except SystemExit:  # Lightning's SIGTERMException: last.ckpt is written
        if caught and callable(requeue):
            requeue(caught[0], None)  # checkpoints the submission, requeues, exits
        raise
    finally:
        signal.signal(usr, requeue)


def install_queue_watcher() -> None:
    """Read job states with ``squeue`` where ``sacct`` fails (no accounting database, as on many
    small clusters), said once instead of a warning at every poll."""
    from submitit.slurm import slurm

    if not isinstance(slurm.SlurmJob.watcher, QueueWatcher):
        slurm.SlurmJob.watcher = QueueWatcher(delay_s=slurm.SlurmJob.watcher._delay_s)


def _squeue_states(ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{"12_3": {"JobID": ..., "State": ...}}`` for the jobs SLURM still lists."""
    command = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%N"]
    result = subprocess.run(
        [*command, "--jobs", ",".join(ids)], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0 and "Invalid job id" not in result.stderr:
        raise RuntimeError(f"squeue failed: {result.stderr.strip()}")
    states: dict[str, dict[str, str]] = {}
    for line in result.stdout.splitlines():
        job_id, state, nodes = ([*line.split("|"), "", ""])[:3]
        state = state if state in GOING | ENDED else "RUNNING"
        states[job_id.strip()] = {"JobID": job_id.strip(), "State": state, "NodeList": nodes}
    return states


class QueueWatcher(SlurmInfoWatcher):
    """submitit's job-state watcher: ``sacct`` while it answers; once it fails, ``squeue``.
    A job squeue no longer lists has ended (its result file says how)."""

    accounting: bool | None = None  # unknown until the first call

    def update(self) -> None:
        pending = self._registered - self._finished
        ids = sorted({job.split("_")[0] for job in pending})
        if not ids:
            return
        self._num_calls += 1
        if self.accounting is not False:
            command = self._make_command() or []
            try:
                output = subprocess.run(command, capture_output=True, check=True, timeout=60).stdout
            except (subprocess.SubprocessError, OSError) as err:
                reason = getattr(err, "stderr", b"") or b""
                reason = reason.decode(errors="replace").strip() or str(err)
                log.info("sacct cannot say (%s): reading job states with squeue", reason)
                self.accounting = False
            else:
                self.accounting = True
                self._info_dict.update(self.read_info(output))
        if self.accounting is False:
            try:
                listed = _squeue_states(ids)
            except (RuntimeError, subprocess.SubprocessError, OSError) as err:
                log.warning("job states unknown for now: %s", err)
                listed = None
            if listed is not None:
                self._info_dict.update(listed)
                for job in pending - listed.keys():
                    self._info_dict[job] = {"JobID": job, "State": GONE}
        self._last_status_check = time.time()
        for job in pending:
            if self.is_done(job, mode="cache"):
                self._finished.add(job)
