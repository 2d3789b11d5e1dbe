"""Run the bundled experiments with their settings and tabulate how each ended.

For each experiment (default: every one in ``conf/experiment`` but the sweeps), one run per
seed, one after another in fresh processes; then a markdown table of its test result beside the
linear baseline, its epochs, whether it ended on its plateau (early stopping) or at its budget,
and its time. The evidence behind the README's "nets that fit" table and its defaults.

    python scripts/experiments_table.py [--experiments signals_tcn,adding_lstm] [--seeds 42]
        [--out table.md] [-- extra overrides ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = {"digits_ablation"}  # experiments that are sweeps of their own


def _headline(metrics: dict[str, float]) -> tuple[str, str]:
    """The metric the table shows, and the baseline's name that goes with it."""
    if "test/acc" in metrics:
        return "test/acc", "logistic"
    return ("test/mse" if "test/mse" in metrics else "test/r2"), "ridge"


@dataclass
class Result:
    metric: str = ""
    value: float = math.nan
    baseline: float = math.nan
    epochs: int = 0
    plateau: bool | None = None
    seconds: float = math.nan
    error: str = ""


def run(experiment: str, seed: int, extra: list[str], work: Path) -> Result:
    out = work / f"{experiment}-{seed}"
    command = [sys.executable, "-m", "trainlab.train", f"experiment={experiment}"]
    command += [f"seed={seed}", f"hydra.run.dir={out}", "callbacks.progress_bar=null", *extra]
    env = {**os.environ, "TRAINLAB_ROOT": str(work), "WANDB_MODE": "offline"}
    began = time.monotonic()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - began
    if done.returncode != 0:
        return Result(error=(done.stderr.strip().splitlines() or ["?"])[-1])
    summary = json.loads((out / "metrics.json").read_text())
    metric, baseline = _headline(summary["metrics"])
    return Result(
        metric=metric,
        value=summary["metrics"][metric],
        baseline=summary["metrics"].get(f"baseline/{baseline}/{metric}", math.nan),
        epochs=summary["epochs"],
        plateau=summary.get("plateau"),
        seconds=seconds,
    )


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", default="")
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--out", type=Path)
    parser.add_argument("extra", nargs="*", help="overrides for every run")
    args = parser.parse_args()
    names = [n for n in args.experiments.split(",") if n] or sorted(
        p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml") if p.stem not in SWEEPS
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    lines = [
        "| experiment | metric | test | linear baseline | epochs | ended on | seconds |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results = [run(name, seed, args.extra, Path(tmp)) for seed in seeds]
            failed = [r for r in results if r.error]
            if failed:
                lines.append(f"| `{name}` | failed: {failed[0].error} | | | | | |")
            else:
                ended = {{True: "plateau", False: "budget", None: "?"}[r.plateau] for r in results}
                lines.append(
                    f"| `{name}` | {results[0].metric} | {_cell([r.value for r in results])} "
                    f"| {_cell([r.baseline for r in results])} "
                    f"| {_cell([float(r.epochs) for r in results])} | {', '.join(sorted(ended))} "
                    f"| {statistics.mean(r.seconds for r in results):.0f} |"
                )
            print(lines[-1], flush=True)
    table = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
