"""Where each process of a run ran: ``env.json``'s ``ranks``, one entry per rank."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from typing_extensions import override

from trainlab.trust.files import write_atomic


def this_rank(rank: int) -> dict[str, Any]:
    """This process: its rank, host, process id, the threads it trains with and, in a SLURM job,
    its node and task. The threads are read once the process group is made: without
    ``OMP_NUM_THREADS`` Lightning then gives each rank the node's CPUs divided by its ranks on
    that node, so the same job laid out otherwise (two ranks on one node or one on each of two)
    computes in another order and ends with other low bits."""
    slurm = {"node": os.environ.get("SLURMD_NODENAME"), "task": os.environ.get("SLURM_PROCID")}
    slurm = {k: v for k, v in slurm.items() if v is not None}
    here = {"hostname": socket.gethostname(), "pid": os.getpid()}
    return {"rank": rank, **here, "threads": torch.get_num_threads(), **slurm}


class RecordRanks(pl.Callback):
    """With more than one process, rank 0 adds each rank's host to ``env.json`` once they have
    met (``setup``, the process group made): a multi-node run shows which machines it ran on.

    Args:
        env_file: the run's ``env.json``, written by rank 0 before training.
    """

    def __init__(self, env_file: Path) -> None:
        self.env_file = Path(env_file)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or trainer.world_size < 2 or not dist.is_initialized():
            return
        ranks: list[Any] = [None] * trainer.world_size
        dist.all_gather_object(ranks, this_rank(trainer.global_rank))
        if trainer.is_global_zero and self.env_file.is_file():
            env = json.loads(self.env_file.read_text())
            env["ranks"] = ranks
            write_atomic(self.env_file, json.dumps(env, indent=2))
