"""Where the configs live, resolvers they use, and checks that need no torch."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# trainlab's own configs. In a source checkout src/trainlab/conf links to the repository's conf/;
# a wheel carries them inside the package, so a project on trainlab finds them at
# pkg://trainlab.conf (trainlab.project).
CONFIG_DIR = (Path(__file__).resolve().parents[1] / "conf").resolve()
HYDRA = {"version_base": "1.3", "config_path": str(CONFIG_DIR)}  # hydra.main's, but the name

# One suffix per process, so every directory name this process resolves agrees.
_RUN_SUFFIX = f"{os.getpid() % 100000:05d}{secrets.token_hex(2)}"
_DIRECTIONS = {"max": "maximize", "min": "minimize"}


def register_resolvers() -> None:
    """Resolvers used by conf/: ``${run_suffix:}`` keeps two runs started in the same second
    apart; ``${optuna_direction:max}`` maps a monitor mode to an Optuna direction;
    ``${draw_figures:${figures}}`` reads ``figures``; ``${project_root:}`` is
    ``$TRAINLAB_ROOT`` or the working directory (usable before Hydra has set its runtime
    values, as sweepers need)."""
    OmegaConf.register_new_resolver(
        "project_root", lambda: os.environ.get("TRAINLAB_ROOT") or os.getcwd(), replace=True
    )
    OmegaConf.register_new_resolver("run_suffix", lambda: _RUN_SUFFIX, replace=True)
    OmegaConf.register_new_resolver(
        "optuna_direction", lambda mode: _DIRECTIONS[mode], replace=True
    )
    OmegaConf.register_new_resolver("sweep_group", sweep_group, replace=True)
    OmegaConf.register_new_resolver("job_name", job_name, replace=True)
    OmegaConf.register_new_resolver("draw_figures", draw_figures, replace=True)


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


def draw_figures(figures: Any) -> bool:
    """``${draw_figures:${figures}}``: whether a run draws its pictures. ``auto`` draws them in
    a single run and not in the jobs of a sweep, where the pictures of hundreds of trials cost
    more than a small job's training; the numbers behind them are saved either way, and
    ``python -m trainlab.figures`` draws them later.

    Raises:
        ConfigError: a value other than auto, true or false.
    """
    from trainlab.errors import ConfigError

    if figures != "auto" and not isinstance(figures, bool):
        raise ConfigError(f"figures must be auto, true or false, got {figures!r}")
    return _multirun() is None if figures == "auto" else bool(figures)


def save_config(cfg: DictConfig, path: Path) -> None:
    """Write the fully resolved config (what the run really used) as YAML, secrets masked."""
    from trainlab.trust.files import write_atomic
    from trainlab.trust.secrets import redact_config

    plain = redact_config(OmegaConf.to_container(cfg, resolve=True))
    write_atomic(path, OmegaConf.to_yaml(OmegaConf.create(plain)))


def config_dirs() -> tuple[Path, ...]:
    """The config directories of this job, first wins: Hydra's search path while a job runs (a
    project's ``conf/`` before trainlab's), else trainlab's own :data:`CONFIG_DIR`."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return (CONFIG_DIR,)
    found: list[Path] = []
    for source in HydraConfig.get().runtime.config_sources:
        if source.schema == "file":
            found.append(Path(source.path).resolve())
        elif source.schema == "pkg" and source.path != "hydra.conf":
            found.append(_package_dir(source.path))
    return tuple(dict.fromkeys(p for p in found if p.is_dir())) or (CONFIG_DIR,)


def _package_dir(package: str) -> Path:
    """Where a ``pkg://`` config source lies on disk (trainlab's configs are plain files)."""
    from importlib.util import find_spec

    spec = find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]).resolve() if locations else Path("/nonexistent")


def config_groups(dirs: tuple[Path, ...] = (CONFIG_DIR,)) -> dict[str, list[str]]:
    """Every config group under ``dirs`` and its options (files starting with ``_`` are parts)."""
    groups: dict[str, list[str]] = {}
    for root in dirs:
        for path in sorted(root.rglob("*.yaml")):
            group = path.parent.relative_to(root).as_posix()
            options = groups.setdefault(group, []) if group != "." else []
            if not path.stem.startswith("_") and path.stem not in options:
                options.append(path.stem)
    return {group: sorted(options) for group, options in sorted(groups.items())}


def print_help(
    entry: str, overrides: list[str], dirs: tuple[Path, ...] = (CONFIG_DIR,), config_name: str = ""
) -> None:
    """``--help`` of ``entry`` (train, eval ...): the config groups and the composed config,
    without Hydra's slow listing of its own groups (``--hydra-help`` still shows those).
    ``dirs`` are the config directories, the primary config's first (a project's)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(dirs[0]), version_base="1.3"):
        cfg = compose(config_name or entry, overrides)
    # Groups the config uses, plus those it selects only on demand (null by default).
    optional = {"experiment", "hparams_search", "debug"} if entry == "train" else set()
    spec = getattr(sys.modules["__main__"], "__spec__", None)  # python -m myproj.train
    command = f"python -m {spec.name if spec else f'trainlab.{entry}'}"
    lines = [
        f"{command} [group=option ...] [key=value ...] [-m for a sweep]",
        "",
        "== Config groups (group=option) ==",
        *(
            f"{group}: {', '.join(options)}"
            for group, options in config_groups(dirs).items()
            if group.split("/")[0] in cfg or group in optional
        ),
        "",
        "== Config (override any key: key=value; add one: +key=value) ==",
        OmegaConf.to_yaml(cfg),
        "Hydra's own flags: --hydra-help. The composed config alone: --cfg job.",
    ]
    print("\n".join(lines))
