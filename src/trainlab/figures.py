"""Draw a run's pictures from the numbers it saved: ``python -m trainlab.figures <run or sweep
dir> ...``.

The jobs of a sweep save ``learning_curves.json`` and ``calibration.json`` but draw no PNGs
(``figures=auto``; a single run draws them). This draws ``learning_curves.png``,
``reliability.png`` and ``risk_coverage.png`` beside them for each run given, or for every job
of a sweep directory. A picture that exists is left as it is; only JSON is read.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from trainlab.trust.files import write_atomic
from trainlab.trust.run_dir import CALIBRATION, PICTURES

SOURCES = PICTURES  # each saved file, and the pictures drawn from it


def runs_in(target: Path) -> list[Path]:
    """``target`` if it holds a run's saved numbers, else the job folders under it that do."""
    if any((target / name).is_file() for name in SOURCES):
        return [target]
    return sorted({p.parent for name in SOURCES for p in target.glob(f"*/{name}")})


def draw(run: Path) -> list[Path]:
    """The missing pictures of one run, drawn from its JSON; the paths written."""
    from trainlab.calibration.plots import draw_calibration
    from trainlab.callbacks.curves import draw_learning_curves

    written: list[Path] = []
    for source, pictures in SOURCES.items():
        missing = [p for p in pictures if not (run / p).exists()]
        if not (run / source).is_file() or not missing:
            continue
        saved = json.loads((run / source).read_text())
        # drawn outside the run (a kill leaves nothing in it), then each missing one written in
        # as every file of a run is: whole or not at all
        with tempfile.TemporaryDirectory(prefix="trainlab-figures-") as scratch:
            if source == CALIBRATION:
                draw_calibration(saved, Path(scratch))
            else:
                draw_learning_curves(saved, Path(scratch))
            for name in missing:
                write_atomic(run / name, (Path(scratch) / name).read_bytes())
                written.append(run / name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainlab.figures", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("targets", nargs="+", type=Path, help="run directories or sweep dirs")
    args = parser.parse_args(argv)
    runs: list[Path] = []
    for target in args.targets:
        found = runs_in(target) if target.is_dir() else []
        if not found:
            print(
                f"trainlab: error: {target} holds no run's {' or '.join(SOURCES)} (a run "
                "directory, or a sweep directory of them)",
                file=sys.stderr,
            )
            return 2
        runs.extend(found)
    for run in runs:
        written = draw(run)
        print(f"{run}: {', '.join(p.name for p in written) or 'every picture was there'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
