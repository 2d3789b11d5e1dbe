"""What a fresh job pays before it trains: from the command to the first training step of the
default run, beside what a bare Python pays to import torch and Lightning.

    python scripts/bench_startup.py [--repeats 5] [--top 15]

Each measure runs in a fresh process, ``--repeats`` times; the median is printed. The first
step is marked by a bootstrap that sets ``Callback.on_train_batch_start`` (the hook that every
callback not overriding it calls), then runs ``python -m trainlab.train`` as the command would.
The top modules by cumulative import time come from ``python -X importtime``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

FIRST_STEP = """
import sys, time, runpy
from lightning.pytorch import Callback
def first(self, *args, **kwargs):
    if not getattr(first, "seen", False):
        first.seen = True
        print(f"FIRST_STEP {time.time()}", flush=True)
Callback.on_train_batch_start = first  # every callback that leaves the hook alone calls it
sys.argv = ["trainlab.train", *sys.argv[1:]]
runpy.run_module("trainlab.train", run_name="__main__")
"""


def _median_seconds(command: list[str], marker: str | None = None) -> float:
    start = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{done.stderr[-2000:]}")
    if marker is None:
        return time.time() - start
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith(marker))
    return float(line.split()[1]) - start


def _imports(top: int) -> list[tuple[float, str]]:
    found = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import trainlab.runtime.training"],
        capture_output=True,
        text=True,
    ).stderr
    rows = []
    for line in found.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        if depth <= 3:
            rows.append((int(cumulative) / 1e6, name.rstrip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as out:
        measures = {
            "a bare Python (python -c pass)": ([python, "-c", "pass"], None),
            "import torch": ([python, "-c", "import torch"], None),
            "import lightning.pytorch": ([python, "-c", "import lightning.pytorch"], None),
            "import trainlab's training pipeline": (
                [python, "-c", "import trainlab.runtime.training"],
                None,
            ),
            "python -m trainlab.train: command to first training step": (
                [python, "-c", FIRST_STEP, f"paths.output_dir={out}/run", "overwrite=true"],
                "FIRST_STEP",
            ),
        }
        for what, (command, marker) in measures.items():
            times = [_median_seconds(command, marker) for _ in range(args.repeats)]
            print(f"{what:60s} {statistics.median(times):6.2f} s  (of {args.repeats})")
    print("\nslowest imports (cumulative s) under import trainlab.runtime.training:")
    for seconds, name in _imports(args.top):
        print(f"{seconds:6.2f}  {name}")


if __name__ == "__main__":
    main()
