"""What the three entry points share: fast ``--help``, and config errors as one clear line."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from trainlab.errors import ConfigError, DataError
from trainlab.runtime.configs import CONFIG_DIR, print_help, register_resolvers
from trainlab.runtime.warm import take_over
from trainlab.trust.files import discard
from trainlab.trust.run_dir import RunDir
from trainlab.trust.secrets import protect_process

T = TypeVar("T")


FULL = (errno.ENOSPC, errno.EDQUOT)


def reject_bad_config(job: Callable[[], T], output_dir: str) -> T:
    """Run ``job``; a :class:`ConfigError` becomes ``trainlab: error: ...`` on stderr and exit
    code 2, and what this process created in the run directory (all of it, with the folders
    above that it made, when the directory is new) is removed: see :func:`discard`. Bad data
    found while training (:class:`DataError`, code 2) and a full disk or quota (code 1) become
    one line naming the file and what is intact, and the run directory stays."""
    try:
        return job()
    except DataError as err:  # found mid-run: what the run wrote stays, to resume from
        print(f"trainlab: error: {err}; {intact(Path(output_dir), 'fix it')}", file=sys.stderr)
        raise SystemExit(2) from err
    except ConfigError as err:
        discard(output_dir)
        print(f"trainlab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    except OSError as err:
        if err.errno not in FULL:
            raise
        said = f"{err.strerror} writing {err.filename or output_dir}"
        print(f"trainlab: error: {said}; {intact(Path(output_dir), 'free space')}", file=sys.stderr)
        raise SystemExit(1) from err


def intact(run_dir: Path, remedy: str) -> str:
    """What a run stopped midway keeps: the state it resumes from, if there is one yet."""
    from trainlab.trust.loading import check_checkpoint, load_checkpoint

    latest = RunDir(run_dir).latest
    try:
        check_checkpoint(latest, resume=True)
    except ConfigError:
        return f"no checkpoint of {run_dir} to resume from yet: {remedy} and run again"
    step = int(load_checkpoint(latest, mmap=True)["global_step"])
    return (
        f"{latest} (step {step}) and the rows before it in the logs are intact: {remedy} and "
        "run the same command with resume=auto to continue"
    )


def start(
    entry: str,
    hydra_main: Callable[[], object],
    dirs: tuple[Path, ...] = (CONFIG_DIR,),
    config_name: str = "",
) -> None:
    """Hand the command to a warm server if one runs (:mod:`trainlab.runtime.warm`), else
    register the resolvers, answer ``--help`` without Hydra's slow group scan, and run.
    ``dirs`` and ``config_name`` are a project's (:mod:`trainlab.project`)."""
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main is not None:  # python -m <module>: the module a server's child runs again
        take_over(main.name)
    sys.argv = protect_process(sys.argv)  # before Hydra, W&B or a launcher copies it
    register_resolvers()
    args = sys.argv[1:]
    if "--help" in args or "-h" in args:
        print_help(entry, [a for a in args if not a.startswith("-")], dirs, config_name)
        return
    hydra_main()
