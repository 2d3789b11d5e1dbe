"""Start a warm server: ``python -m trainlab.warm [--idle-minutes 30]``, or ``--stop``.

While it runs, ``python -m trainlab.train`` (and eval, predict, export) of this user and
Python environment start from it in well under a second instead of importing torch and
Lightning for several: see :mod:`trainlab.runtime.warm` for what it refuses and why.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainlab.warm", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--idle-minutes", type=float, default=30.0, help="exit after this long without a job"
    )
    parser.add_argument("--stop", action="store_true", help="stop the running server")
    args = parser.parse_args(argv)

    from trainlab.runtime.warm import Server, listening, socket_path, stop_server

    if args.stop:
        if not stop_server():
            print("trainlab: no warm server runs for this environment", file=sys.stderr)
            return 1
        return 0
    if args.idle_minutes <= 0:
        parser.error("--idle-minutes must be positive")
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path.pop(0)  # import nothing from this directory: a job brings its own
    if listening(path := socket_path()):
        print(f"trainlab: a warm server already listens at {path}", file=sys.stderr)
        return 1
    server = Server(path, idle_seconds=60 * args.idle_minutes)
    server.warm_up()
    server.serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
