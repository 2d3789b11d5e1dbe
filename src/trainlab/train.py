"""Train a network: ``python -m trainlab.train [overrides]`` (see conf/train.yaml)."""

from __future__ import annotations

import math
import sys

import hydra
from omegaconf import DictConfig

from trainlab.runtime.cli import reject_bad_config, start
from trainlab.runtime.configs import HYDRA
from trainlab.runtime.ddp import child_argv
from trainlab.trust.secrets import protect_job


def job(cfg: DictConfig) -> float | None:
    protect_job()  # a launcher's job runs in a process of its own
    # Heavy imports only now that Hydra has composed the config: --help stays instant.
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.pytorch.utilities import rank_zero_only

    from trainlab.runtime.ddp import JobScope
    from trainlab.runtime.training import fit, objective
    from trainlab.sweeps import survive

    def train_and_test() -> dict[str, float]:
        with JobScope():
            return fit(cfg)

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        # One bad job must not end the sweep: its failure goes to its run directory.
        found = survive(train_and_test, cfg.paths.output_dir)
        if found is None:
            return math.nan  # Optuna records the trial as failed
        metrics = found
    else:
        metrics = reject_bad_config(train_and_test, cfg.paths.output_dir)
    if getattr(rank_zero_only, "rank", 0) == 0:
        shown = {k: round(v, 4) for k, v in sorted(metrics.items()) if k.startswith("test/")}
        print(f"run directory: {cfg.paths.output_dir}\ntest metrics: {shown}")
        if baselines := baseline_summary(metrics, "test"):
            print(f"baselines on test: {baselines}")
    return objective(metrics, cfg.get("optimized_metric"))


def baseline_summary(metrics: dict[str, float], split: str) -> str:
    """``"logistic acc 0.96, f1 0.96; majority acc 0.1, f1 0.02"`` for ``split``: the
    ``baseline/<name>/<split>/<metric>`` numbers that the baselines callback reported."""
    found: dict[str, list[str]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 4 and parts[0] == "baseline" and parts[2] == split:
            found.setdefault(parts[1], []).append(f"{parts[3]} {value:.4g}")
    return "; ".join(f"{name} " + ", ".join(values) for name, values in found.items())


def main() -> None:
    sys.argv = child_argv(sys.argv)  # a DDP child runs only its own sweep job
    start("train", hydra.main(**HYDRA, config_name="train")(job))


if __name__ == "__main__":
    main()
