"""What the three entry points share: fast ``--help``, and config errors as one clear line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from trainlab.errors import ConfigError
from trainlab.runtime.configs import CONFIG_DIR, print_help, register_resolvers
from trainlab.trust.files import discard
from trainlab.trust.secrets import protect_process

T = TypeVar("T")


def reject_bad_config(job: Callable[[], T], output_dir: str) -> T:
    """Run ``job``; a :class:`ConfigError` becomes ``trainlab: error: ...`` on stderr and exit
    code 2, and what this process created in the run directory (all of it, with the folders
    above that it made, when the directory is new) is removed: see :func:`discard`."""
    try:
        return job()
    except ConfigError as err:
        discard(output_dir)
        print(f"trainlab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err


def start(
    entry: str,
    hydra_main: Callable[[], object],
    dirs: tuple[Path, ...] = (CONFIG_DIR,),
    config_name: str = "",
) -> None:
    """Register the resolvers, answer ``--help`` without Hydra's slow group scan, else run.
    ``dirs`` and ``config_name`` are a project's (:mod:`trainlab.project`)."""
    sys.argv = protect_process(sys.argv)  # before Hydra, W&B or a launcher copies it
    register_resolvers()
    args = sys.argv[1:]
    if "--help" in args or "-h" in args:
        print_help(entry, [a for a in args if not a.startswith("-")], dirs, config_name)
        return
    hydra_main()
