"""Train a network: ``python -m trainlab.train [overrides]`` (see conf/train.yaml)."""

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
from trainlab.runtime.ddp import child_argv


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _main(cfg: DictConfig) -> float | None:
    # Heavy imports only now that Hydra has composed the config: --help stays instant.
    from trainlab.runtime.ddp import JobScope
    from trainlab.runtime.training import fit, objective

    try:
        with JobScope():
            metrics = fit(cfg)
    except ConfigError as err:
        discard_untouched_run_dir(cfg.paths.output_dir)
        print(f"trainlab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    from lightning.pytorch.utilities import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) == 0:
        shown = {k: round(v, 4) for k, v in sorted(metrics.items()) if k.startswith("test/")}
        print(f"run directory: {cfg.paths.output_dir}\ntest metrics: {shown}")
    return objective(metrics, cfg.get("optimized_metric"))


def main() -> None:
    register_resolvers()
    if wants_help(sys.argv[1:]):
        print_help("train", [a for a in sys.argv[1:] if not a.startswith("-")])
        return
    sys.argv = child_argv(sys.argv)
    _main()


if __name__ == "__main__":
    main()
