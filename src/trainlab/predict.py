"""Predict with a trained run: ``python -m trainlab.predict run_dir=<run> [input_csv=x.csv]``.

Writes one row per sample: the prediction and, for classifiers, each class's probability.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from trainlab.errors import ConfigError
from trainlab.runtime.configs import (
    CONFIG_DIR,
    discard_untouched_run_dir,
    print_help,
    register_resolvers,
    wants_help,
)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="predict")
def _main(cfg: DictConfig) -> None:
    from trainlab.runtime.evaluation import predict

    try:
        path = predict(cfg)
    except ConfigError as err:
        discard_untouched_run_dir(cfg.paths.output_dir)
        print(f"trainlab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    print(f"predictions: {path}")


def main() -> None:
    register_resolvers()
    if wants_help(sys.argv[1:]):
        print_help("predict", [a for a in sys.argv[1:] if not a.startswith("-")])
        return
    _main()


if __name__ == "__main__":
    main()
