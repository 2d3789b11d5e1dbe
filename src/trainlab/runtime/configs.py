"""Where the configs live, resolvers they use, and checks that need no torch."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[3] / "conf"

# One suffix per process, so every directory name this process resolves agrees.
_RUN_SUFFIX = f"{os.getpid() % 100000:05d}{secrets.token_hex(2)}"
_DIRECTIONS = {"max": "maximize", "min": "minimize"}


def register_resolvers() -> None:
    """Resolvers used by conf/: ``${run_suffix:}`` keeps two runs started in the same second
    apart; ``${optuna_direction:max}`` maps a monitor mode to an Optuna direction;
    ``${project_root:}`` is ``$TRAINLAB_ROOT`` or the working directory (usable before Hydra
    has set its runtime values, as sweepers need)."""
    OmegaConf.register_new_resolver(
        "project_root", lambda: os.environ.get("TRAINLAB_ROOT") or os.getcwd(), replace=True
    )
    OmegaConf.register_new_resolver("run_suffix", lambda: _RUN_SUFFIX, replace=True)
    OmegaConf.register_new_resolver(
        "optuna_direction", lambda mode: _DIRECTIONS[mode], replace=True
    )
    OmegaConf.register_new_resolver("sweep_group", sweep_group, replace=True)
    OmegaConf.register_new_resolver("job_name", job_name, replace=True)


def _multirun() -> Any:
    """Hydra's runtime config when this job belongs to a sweep, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    return hydra if hydra.mode == RunMode.MULTIRUN else None


def sweep_group(run_name: str) -> str | None:
    """``${sweep_group:${run_name}}``: ``<run_name>/<sweep directory name>`` (the sweep's name
    and start time) for every job of a sweep, so a tracker groups them; None for a single run."""
    hydra = _multirun()
    return f"{run_name}/{Path(str(hydra.sweep.dir)).name}" if hydra is not None else None


def job_name(run_name: str) -> str:
    """``${job_name:${run_name}}``: in a sweep, the run name and the job's own overrides
    (``digits_mlp[net.norm=batch,seed=2]``); else the run name."""
    hydra = _multirun()
    overrides = str(hydra.job.override_dirname) if hydra is not None else ""
    return f"{run_name}[{overrides}]" if overrides else run_name


def save_config(cfg: DictConfig, path: Path) -> None:
    """Write the fully resolved config (what the run really used) as YAML, secrets masked."""
    from trainlab.trust.files import write_atomic
    from trainlab.trust.secrets import redact_config

    plain = redact_config(OmegaConf.to_container(cfg, resolve=True))
    write_atomic(path, OmegaConf.to_yaml(OmegaConf.create(plain)))


def config_groups() -> dict[str, list[str]]:
    """Every config group under ``conf/`` and its options (files starting with ``_`` are parts)."""
    groups: dict[str, list[str]] = {}
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        group = path.parent.relative_to(CONFIG_DIR).as_posix()
        if group != "." and not path.stem.startswith("_"):
            groups.setdefault(group, []).append(path.stem)
    return groups


def print_help(config_name: str, overrides: list[str]) -> None:
    """``--help``: the config groups and the composed config, without Hydra's slow listing of
    its own groups (``--hydra-help`` still shows those)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides)
    # Groups the config uses, plus those it selects only on demand (null by default).
    optional = {"experiment", "hparams_search", "debug"} if config_name == "train" else set()
    lines = [
        f"python -m trainlab.{config_name} [group=option ...] [key=value ...] [-m for a sweep]",
        "",
        "== Config groups (group=option) ==",
        *(
            f"{group}: {', '.join(options)}"
            for group, options in config_groups().items()
            if group.split("/")[0] in cfg or group in optional
        ),
        "",
        "== Config (override any key: key=value; add one: +key=value) ==",
        OmegaConf.to_yaml(cfg),
        "Hydra's own flags: --hydra-help. The composed config alone: --cfg job.",
    ]
    print("\n".join(lines))
