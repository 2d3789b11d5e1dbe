"""What the three entry points share: fast ``--help``, and config errors as one clear line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from trainlab.errors import ConfigError
from trainlab.runtime.configs import discard_untouched_run_dir, print_help, register_resolvers

T = TypeVar("T")


def reject_bad_config(job: Callable[[], T], output_dir: str, log_dir: str | None = None) -> T:
    """Run ``job``; a :class:`ConfigError` becomes ``trainlab: error: ...`` on stderr and exit
    code 2, and the run directory Hydra made for the job is removed if nothing else is in it
    (with the folders up to ``log_dir`` that this leaves empty)."""
    try:
        return job()
    except ConfigError as err:
        discard_untouched_run_dir(output_dir, log_dir)
        print(f"trainlab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err


def start(config_name: str, hydra_main: Callable[[], object]) -> None:
    """Register the resolvers, answer ``--help`` without Hydra's slow group scan, else run."""
    register_resolvers()
    args = sys.argv[1:]
    if "--help" in args or "-h" in args:
        print_help(config_name, [a for a in args if not a.startswith("-")])
        return
    hydra_main()
