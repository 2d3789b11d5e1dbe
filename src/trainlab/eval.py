"""Evaluate a trained run: ``python -m trainlab.eval run_dir=<run> [split=test]``.

The run's own config is rebuilt from ``<run>/config.yaml``: no overrides need repeating.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from trainlab.runtime.cli import reject_bad_config, start
from trainlab.runtime.configs import HYDRA
from trainlab.trust.secrets import protect_job


def job(cfg: DictConfig) -> None:
    protect_job()  # a launcher's job runs in a process of its own
    from trainlab.runtime.evaluation import evaluate

    metrics = reject_bad_config(lambda: evaluate(cfg), cfg.paths.output_dir)
    print(f"{cfg.split} metrics: { ({k: round(v, 4) for k, v in sorted(metrics.items())}) }")


def main() -> None:
    start("eval", hydra.main(**HYDRA, config_name="eval")(job))


if __name__ == "__main__":
    main()
