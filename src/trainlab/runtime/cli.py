"""What the three entry points share: fast ``--help``, and config errors as one clear line."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from trainlab.errors import ConfigError
from trainlab.runtime.configs import CONFIG_DIR, print_help, register_resolvers
from trainlab.trust.files import discard
from trainlab.trust.secrets import protect_process

T = TypeVar("T")


FULL = (errno.ENOSPC, errno.EDQUOT)


def reject_bad_config(job: Callable[[], T], output_dir: str) -> T:
    """Run ``job``; a :class:`ConfigError` becomes ``trainlab: error: ...`` on stderr and exit
    code 2, and what this process created in the run directory (all of it, with the folders
    above that it made, when the directory is new) is removed: see :func:`discard`. A full
    disk (or quota) becomes one line naming the file and what is intact, and exit code 1."""
    try:
        return job()
    except ConfigError as err:
        discard(output_dir)
        print(f"trainlab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    except OSError as err:
        if err.errno not in FULL:
            raise
        print(f"trainlab: error: {disk_full(err, Path(output_dir))}", file=sys.stderr)
        raise SystemExit(1) from err


def disk_full(err: OSError, run_dir: Path) -> str:
    """What a run stopped by a full disk says: the file, and the state to resume from."""
    from trainlab.trust.loading import check_checkpoint

    where = err.filename or run_dir
    said = f"{err.strerror or 'no space left on device'} writing {where}; "
    latest = run_dir / "checkpoints" / "last.ckpt"
    try:
        check_checkpoint(latest, resume=True)
    except ConfigError:
        return said + f"no checkpoint of {run_dir} to resume from yet: free space and run again"
    from trainlab.trust.loading import load_checkpoint

    step = int(load_checkpoint(latest, mmap=True)["global_step"])
    return (
        said + f"{latest} (step {step}) and the rows before it in the logs are intact: free "
        "space and run the same command with resume=auto to continue"
    )


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
