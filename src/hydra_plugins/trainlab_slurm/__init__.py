"""trainlab's SLURM launcher: Hydra's submitit launcher, with one owner of requeueing, requeued
jobs that resume in their own directory, and job states read without accounting
(see :mod:`trainlab.sweeps.slurm`). Hydra imports this module when it starts: keep it light."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _submitit


class SlurmLauncher(_submitit.SlurmLauncher):
    """``hydra/launcher=slurm``: each job of a sweep is a SLURM job (an array, through submitit)."""

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from trainlab.sweeps.slurm import install_queue_watcher

        install_queue_watcher()
        return super().launch(job_overrides, initial_job_idx)

    def __call__(self, sweep_overrides: list[str], *args: Any) -> JobReturn:
        from trainlab.sweeps.slurm import requeued_overrides, stop_then_requeue

        with stop_then_requeue():
            return super().__call__(requeued_overrides(sweep_overrides), *args)
