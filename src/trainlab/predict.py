"""Predict with a trained run: ``python -m trainlab.predict run_dir=<run> [input_csv=x.csv]``.

Writes one row per sample: the prediction and, for classifiers, each class's probability
(calibrated when the run fitted a calibrator; ``calibrated=false`` for the raw ones).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from trainlab.runtime.cli import reject_bad_config, start
from trainlab.runtime.configs import HYDRA
from trainlab.trust.secrets import protect_job


def job(cfg: DictConfig) -> None:
    protect_job()  # a launcher's job runs in a process of its own
    from trainlab.runtime.evaluation import predict

    path = reject_bad_config(lambda: predict(cfg), cfg.paths.output_dir)
    print(f"predictions: {path}")


def main() -> None:
    start("predict", hydra.main(**HYDRA, config_name="predict")(job))


if __name__ == "__main__":
    main()
