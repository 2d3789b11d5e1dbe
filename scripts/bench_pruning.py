"""What pruning saves: the same Optuna search (TPE over learning rate, batch size and dropout of
the TCN on the bundled signals) with each pruner, repeated with different sampler seeds; the
epochs the search spent and the best validation accuracy it found.

    python scripts/bench_pruning.py --trials 64 --repeats 3 --pruners none median hyperband

Searches run two at a time (one thread each). Prints a markdown table and writes
``pruning.json`` with every search's numbers to --out.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
# What a search needs of each trial: training, checkpoints, early stopping; not the calibration,
# diagnostics and baselines of a run one reads by itself.
LEAN = [
    "baselines=false",
    "callbacks.calibration=null",
    "~callbacks.learning_curves",
    "~callbacks.dead_units",
    "~callbacks.gradient_health",
]


def search(
    out: Path, pruner: str, seed: int, trials: int, epochs: int, extra: list[str]
) -> dict[str, Any]:
    """One search; its totals read back from its run directories. ``pruner`` is a pruner
    config's name, with settings of its own after colons:
    ``successive_halving:reduction_factor=4``."""
    name, *settings = pruner.split(":")
    extra = [*extra, *(f"++hydra.sweeper.pruner.{s}" for s in settings)]
    cwd = out / f"{pruner.replace(':', '_').replace('=', '')}_seed{seed}"
    cwd.mkdir(parents=True, exist_ok=True)
    args = [
        "experiment=signals_tcn",
        "hparams_search=optuna",
        f"hydra/sweeper/pruner={name}",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.sampler.seed={seed}",
        "model.monitor=val/acc",
        "model.mode=max",
        f"trainer.max_epochs={epochs}",
        "callbacks.progress_bar=null",
        *LEAN,
        *extra,
    ]
    label = " ".join([name, *(e.rsplit(".", 1)[-1] for e in extra)])
    with (cwd / ".bench.lock").open("w") as lock:
        # another bench running this search (the same --out) is waited for, then read back
        fcntl.flock(lock, fcntl.LOCK_EX)
        if held := finished(cwd):  # a search this --out already holds is read back, not rerun
            return {"pruner": label, "seed": seed, "wall_seconds": None, **totals(held[-1])}
        return {"pruner": label, "seed": seed, **run_search(cwd, args, label)}


def run_search(cwd: Path, args: list[str], label: str) -> dict[str, Any]:
    """Run the search in ``cwd``: its wall time and totals."""
    env = {**os.environ, "TRAINLAB_ROOT": str(cwd), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "trainlab.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{label} in {cwd} failed:\n{done.stderr[-3000:]}")
    return {"wall_seconds": round(wall, 1), **totals(finished(cwd)[-1])}


def finished(cwd: Path) -> list[Path]:
    """The finished sweeps under a search's folder, oldest first: an interrupted one has no
    ``optimization_results.yaml``, and one with failed trials is no measure of the search."""
    sweeps = cwd / "logs" / "signals_tcn" / "multiruns"
    found = sweeps.iterdir() if sweeps.is_dir() else []
    return sorted(
        s
        for s in found
        if (results := s / "optimization_results.yaml").is_file()
        and not yaml.safe_load(results.read_text()).get("failed")
    )


def totals(sweep: Path) -> dict[str, Any]:
    """A finished search's totals, read back from its sweep directory: trials, pruned trials,
    epochs and CPU seconds spent, the best validation accuracy and the test accuracy of the
    trial that reached it (a best of 64 noisy validation scores is biased up; its test score
    is not)."""
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    jobs = {int(p.parent.name): json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")}
    best = max(jobs, key=lambda n: jobs[n]["metrics"].get("val/acc", -1.0))
    return {
        "trials": len(jobs),
        "pruned": int(results.get("pruned", 0)),
        "epochs": sum(int(j["epochs"]) for j in jobs.values()),
        "cpu_seconds": round(sum(float(j["compute"]["cpu_seconds"]) for j in jobs.values()), 1),
        "best_val_acc": float(results["best_value"]),
        "best_trial_test_acc": float(jobs[best]["metrics"]["test/acc"]),
        "sweep": str(sweep),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument(
        "--pruners",
        nargs="+",
        default=["none", "median", "hyperband"],
        help="pruner configs, each with its own settings after colons: "
        "successive_halving:reduction_factor=4",
    )
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench_pruning"))
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="one more override for every search, e.g. hydra.sweeper.pruner.min_resource=1",
    )
    parser.add_argument(
        "--table",
        nargs="+",
        type=Path,
        help="only print the table of earlier runs' pruning.json files (read again from their "
        "sweep directories)",
    )
    args = parser.parse_args()
    if args.table:
        found = [
            {"pruner": r["pruner"], "seed": r["seed"], **totals(Path(r["sweep"]))}
            for path in args.table
            for r in json.loads(path.read_text())
        ]
        print(table(found, list(dict.fromkeys(r["pruner"] for r in found))))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    plan = [(p, s) for s in range(1, args.repeats + 1) for p in args.pruners]
    with ThreadPoolExecutor(args.parallel) as pool:
        # every search runs even when one fails (map would cancel those not yet started)
        futures = [
            pool.submit(search, args.out, p, s, args.trials, args.epochs, args.override)
            for p, s in plan
        ]
        outcomes = [f.exception() or f.result() for f in futures]
    found = [o for o in outcomes if isinstance(o, dict)]
    (args.out / "pruning.json").write_text(json.dumps(found, indent=2))
    print(table(found, list(dict.fromkeys(r["pruner"] for r in found))))
    if failed := [o for o in outcomes if isinstance(o, BaseException)]:
        sys.exit("\n".join(f"failed: {err}" for err in failed))


def table(found: list[dict[str, Any]], pruners: list[str]) -> str:
    """The markdown table: per pruner, the means (± SD over repeats) of its searches, and its
    epochs and scores against the searches without pruning of the same sampler seeds (a dash
    where no seed of it has one)."""
    base = {r["seed"]: r for r in found if r["pruner"] == "none"}
    lines = [
        "| pruner | searches | pruned trials | epochs spent | share of none | best val acc | "
        "vs none (points) | its test acc | vs none (points) |",
        "|" + "---|" * 9,
    ]
    for pruner in pruners:
        rows = [r for r in found if r["pruner"] == pruner]
        paired = [(r, base[r["seed"]]) for r in rows if r["seed"] in base]
        epochs = statistics.mean(float(r["epochs"]) for r in rows)
        cells = [f"{pruner}", f"{len(rows)} x {rows[0]['trials']}"]
        cells.append(f"{statistics.mean(int(r['pruned']) for r in rows):.1f}")
        cells.append(f"{epochs:.0f}")
        spent = sum(float(b["epochs"]) for _, b in paired)
        cells.append(f"{sum(float(r['epochs']) for r, _ in paired) / spent:.0%}" if spent else "-")
        for key in ("best_val_acc", "best_trial_test_acc"):
            values = [float(r[key]) for r in rows]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {sd:.3f}")
            gaps = [float(r[key]) - float(b[key]) for r, b in paired]
            cells.append(f"{100 * statistics.mean(gaps):+.1f}" if gaps else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
