"""What a fresh job pays before it trains: from the command to the first training step of the
default run, beside what a bare Python pays to import torch and Lightning.

    python scripts/bench_startup.py [--repeats 5] [--top 15] [--sweep 11]

Each measure runs in a fresh process, ``--repeats`` times; the median is printed. The first
step is marked by a callback added to the run's config (``+callbacks.first_step``), so it is
marked in whichever process trains: the command's own, or, from a warm server
(``python -m trainlab.warm``, started by the script), the server's child.
The top modules by cumulative import time come from ``python -X importtime``. Last, an
in-process sweep of ``--sweep`` one-epoch jobs gives what each job costs beyond its ``fit``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# A callback of the run's own config marks the first training step, in whichever process
# trains: the command's own (cold) or a warm server's child.
MARK = """
import time
from lightning.pytorch import Callback

class FirstStep(Callback):
    def on_train_batch_start(self, *args, **kwargs):
        if not getattr(self, "seen", False):
            self.seen = True
            print(f"FIRST_STEP {time.time()}", flush=True)
"""


def _median_seconds(
    command: list[str], marker: str | None = None, cwd: str | None = None, env: dict | None = None
) -> float:
    start = time.time()
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=env or os.environ.copy()
    )
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


@contextlib.contextmanager
def warm_server(folder: str) -> Iterator[dict[str, str]]:
    """A warm server of its own (its socket under ``folder``) for the time of the block; the
    environment that reaches it."""
    env = {**os.environ, "XDG_RUNTIME_DIR": folder}
    env.pop("TRAINLAB_WARM", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "trainlab.warm", "--idle-minutes", "5"],
        env=env,
        cwd=folder,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once it listens
        if "listening" not in line:
            raise SystemExit(f"the warm server did not start: {line}")
        yield env
    finally:
        server.terminate()
        server.wait(timeout=60)


def sweep_cost(python: str, out: str, jobs: int) -> str:
    """What an in-process sweep pays a job beyond its training: a multirun of ``jobs``
    one-epoch jobs against one of a single job, less the jobs' own time in ``fit``."""
    base = [python, "-m", "trainlab.train", "-m", "trainer.max_epochs=1"]
    env = {**os.environ, "TRAINLAB_ROOT": out, "TRAINLAB_WARM": "0"}
    one = _median_seconds([*base, "seed=0"], cwd=out, env=env)
    seeds = ",".join(str(i) for i in range(jobs))
    many = _median_seconds([*base, f"seed={seeds}"], cwd=out, env=env)
    sweep = max(Path(out, "logs", "digits_mlp", "multiruns").iterdir(), key=lambda p: p.name)
    fit = [
        json.loads(m.read_text())["compute"]["fit_seconds"] for m in sweep.glob("*/metrics.json")
    ]
    each = (many - one) / (jobs - 1)
    return (
        f"in-process sweep of {jobs} one-epoch jobs: {each:.2f} s a job, of which "
        f"{statistics.mean(fit):.2f} s in fit; {each - statistics.mean(fit):.2f} s beyond it"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--sweep", type=int, default=11, help="jobs of the in-process sweep measured (0: none)"
    )
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as out:
        Path(out, "first_step_mark.py").write_text(MARK)
        train = [
            python,
            "-m",
            "trainlab.train",
            "+callbacks.first_step._target_=first_step_mark.FirstStep",
        ]
        train += [f"paths.output_dir={out}/run", "overwrite=true"]
        cold = {**os.environ, "TRAINLAB_WARM": "0"}
        measures = {
            "a bare Python (python -c pass)": ([python, "-c", "pass"], None),
            "import torch": ([python, "-c", "import torch"], None),
            "import lightning.pytorch": ([python, "-c", "import lightning.pytorch"], None),
            "import trainlab's training pipeline": (
                [python, "-c", "import trainlab.runtime.training"],
                None,
            ),
        }
        for what, (command, marker) in measures.items():
            times = [_median_seconds(command, marker) for _ in range(args.repeats)]
            print(f"{what:60s} {statistics.median(times):6.2f} s  (of {args.repeats})")
        what = "python -m trainlab.train: command to first training step"
        times = [_median_seconds(train, "FIRST_STEP", out, cold) for _ in range(args.repeats)]
        print(f"{what:60s} {statistics.median(times):6.2f} s  (of {args.repeats})")
        with warm_server(out) as env:
            times = [_median_seconds(train, "FIRST_STEP", out, env) for _ in range(args.repeats)]
        what = "the same, from a warm server (python -m trainlab.warm)"
        print(f"{what:60s} {statistics.median(times):6.2f} s  (of {args.repeats})")
        if args.sweep > 1:
            print(sweep_cost(python, out, args.sweep))
    print("\nslowest imports (cumulative s) under import trainlab.runtime.training:")
    for seconds, name in _imports(args.top):
        print(f"{seconds:6.2f}  {name}")


if __name__ == "__main__":
    main()
