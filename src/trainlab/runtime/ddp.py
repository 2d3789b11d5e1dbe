"""DDP inside Hydra sweeps.

Lightning's ``strategy=ddp`` starts ranks 1.. by re-running the command line. Under
``--multirun`` that command is the whole sweep, so every child would run every job. Instead the
rank-0 process records the current job's own overrides and run directory in the environment,
and a child started by Lightning swaps its command line for exactly that one job.
"""

from __future__ import annotations

import json
import os

JOB_ENV = "TRAINLAB_DDP_JOB"
# What Lightning's launcher puts into the parent's environment when it starts children.
LAUNCH_ENV = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def child_argv(argv: list[str]) -> list[str]:
    """The command line a DDP child should run: its job's overrides, not the sweep's."""
    spec = os.environ.get(JOB_ENV)
    if not spec or os.environ.get("LOCAL_RANK", "0") == "0":
        return argv
    job = json.loads(spec)
    rank = os.environ["LOCAL_RANK"]
    return [
        argv[0],
        *job["overrides"],
        f"hydra.run.dir={job['run_dir']}",
        "hydra.output_subdir=null",
        f"hydra.job.name={job['name']}_rank{rank}",
    ]


class JobScope:
    """Context for one Hydra job on the launching process: publishes the job for DDP children
    and, afterwards, clears what a DDP launch left behind so the next job starts clean."""

    def __enter__(self) -> JobScope:
        from hydra.core.hydra_config import HydraConfig

        self._inherited = {k: os.environ[k] for k in LAUNCH_ENV if k in os.environ}
        if HydraConfig.initialized() and "LOCAL_RANK" not in os.environ:
            hc = HydraConfig.get()
            os.environ[JOB_ENV] = json.dumps(
                {
                    "overrides": list(hc.overrides.task),
                    "run_dir": hc.runtime.output_dir,
                    "name": hc.job.name,
                }
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._inherited:  # a child, or launched by an external cluster manager: leave it
            return
        for key in (*LAUNCH_ENV, JOB_ENV):
            os.environ.pop(key, None)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
