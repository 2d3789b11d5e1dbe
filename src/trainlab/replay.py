"""What pruning would have saved on searches that have run: ``python -m trainlab.replay <sweep
dir> ... [--pruners none median hyperband:reduction_factor=4 ...] [--orders 20]``.

Replays each trial's curve of the optimised metric (its ``csv/metrics.csv``) through a study
with each pruner, in the sweep's order and in shuffled orders, and prints the epochs each pruner
would have spent and the best score it would have kept. A pruner is a config of
``hydra/sweeper/pruner`` with settings after colons, as ``hydra/sweeper/pruner=`` takes it. Run
one search without pruning, then choose the pruner from its curves: exact for random, grid and
TPE's start-up trials, an estimate for TPE after them (trainlab.experiments.replay).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def table(
    searches: Sequence[Any], pruners: Sequence[str], config_dir: Path, count: int
) -> list[dict[str, str]]:
    """A row per pruner: over all searches in their own order, then over shuffled orders."""
    from trainlab.experiments.replay import make_pruner, orders, replay

    metric = searches[0].metric
    base = [replay(s, make_pruner("none", config_dir, s.max_epochs)) for s in searches]
    rows = []
    for spec in pruners:
        own, shuffled_epochs, deltas = [], 0, []
        for search, unpruned in zip(searches, base, strict=True):
            for k, order in enumerate(orders(count, len(search.trials))):
                outcome = replay(search, make_pruner(spec, config_dir, search.max_epochs), order)
                own += [outcome] if k == 0 else []
                shuffled_epochs += outcome.epochs
                deltas.append(outcome.best - unpruned.best)
        epochs = sum(o.epochs for o in own)
        all_epochs = sum(b.epochs for b in base)
        own_deltas = [o.best - b.best for o, b in zip(own, base, strict=True)]
        finite = [d for d in deltas if math.isfinite(d)]
        trials = sum(len(s.trials) for s in searches)
        rows.append(
            {
                "pruner": spec,
                "pruned trials": f"{sum(o.pruned for o in own)}/{trials}",
                "epochs": str(epochs),
                "share": f"{epochs / all_epochs:.0%}",
                f"best {metric}": " ".join(f"{o.best:.4f}" for o in own),
                "vs none": f"{statistics.mean(own_deltas):+.4f}",
                f"{count} orders: share": f"{shuffled_epochs / (all_epochs * count):.0%}",
                "vs none (mean ± SD)": (
                    f"{statistics.mean(finite):+.4f} ± {statistics.pstdev(finite):.4f}"
                    if finite
                    else "no trial ends"
                ),
                "unknown": str(sum(o.unknown for o in own)),
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    from trainlab.experiments.replay import load_search, pruner_names
    from trainlab.experiments.report import markdown_table
    from trainlab.runtime.configs import CONFIG_DIR

    parser = argparse.ArgumentParser(
        prog="python -m trainlab.replay", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep directories (each a search)")
    parser.add_argument(
        "--pruners", nargs="+", help="pruner configs, settings after colons (default: all)"
    )
    parser.add_argument("--orders", type=int, default=20, help="the sweep's order and shuffles")
    parser.add_argument("--metric", help="the metric to prune on (default: the optimised one)")
    parser.add_argument(
        "--config-dir", type=Path, default=CONFIG_DIR, help="where hydra/sweeper/pruner lives"
    )
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error(f"--orders {args.orders}: at least 1 (the sweep's own order)")
    pruners = args.pruners or pruner_names(args.config_dir)
    try:
        searches = [load_search(s, args.metric) for s in args.sweeps]
        rows = table(searches, pruners, args.config_dir, args.orders)
    except (ValueError, FileNotFoundError) as err:
        print(f"trainlab: error: {err}", file=sys.stderr)
        return 2
    for search in searches:
        print(
            f"{search.path}: {len(search.trials)} trials of at most {search.max_epochs} epochs, "
            f"{search.metric} ({search.mode}), study {search.study_name!r}"
            + (f"; left out: {'; '.join(search.skipped)}" if search.skipped else "")
        )
    print(markdown_table(rows), end="")
    if any(row["unknown"] != "0" for row in rows):
        print(
            "unknown: trials the search's own pruner stopped that this pruner would have let "
            "go on; they count as stopped where they were, so its epochs are a lower bound."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
