"""What the three entry points share: fast ``--help``, and config errors as one clear line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from trainlab.errors import ConfigError
from trainlab.runtime.configs import print_help, register_resolvers
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


def start(config_name: str, hydra_main: Callable[[], object]) -> None:
    """Register the resolvers, answer ``--help`` without Hydra's slow group scan, else run."""
    sys.argv = protect_process(sys.argv)  # before Hydra, W&B or a launcher copies it
    register_resolvers()
    args = sys.argv[1:]
    if "--help" in args or "-h" in args:
        print_help(config_name, [a for a in args if not a.startswith("-")])
        return
    hydra_main()
