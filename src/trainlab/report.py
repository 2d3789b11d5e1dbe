"""Report over runs: ``python -m trainlab.report <sweep dir | run dirs | glob> ... [--out DIR]``.

Prints the groups (mean ± std and 95% CI per configuration, the baselines as reference rows)
and the ablation view, and writes ``report.md``, ``report.csv`` (one row per job),
``groups.csv`` and a PNG per plot into the sweep directory (or ``--out``). When the runs
logged to Weights & Biases, the tables and plots also go to a W&B run of their own.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OWNER = "trainlab-report"


def output_dir(targets: Sequence[str]) -> Path | None:
    """The single directory given (a sweep or a run), else None: runs from several places
    have no folder of their own, and ``--out`` must say where the report goes."""
    if len(targets) == 1 and Path(targets[0]).is_dir():
        return Path(targets[0])
    return None


TABLES = ("report.md", "report.csv", "groups.csv")


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as f:
        if rows:
            from trainlab.experiments.report import columns_of

            writer = csv.DictWriter(f, fieldnames=columns_of(rows), restval="")
            writer.writeheader()
            writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainlab.report", description=__doc__.split("\n")[0]
    )
    parser.add_argument("targets", nargs="+", help="sweep directories, run directories or globs")
    parser.add_argument("--out", type=Path, help="where to write the report (default: the sweep)")
    parser.add_argument(
        "--wandb",
        choices=("auto", "on", "off"),
        default="auto",
        help="log the report to W&B: auto does when the runs logged there",
    )
    args = parser.parse_args(argv)

    from trainlab.errors import ConfigError
    from trainlab.experiments.plots import draw
    from trainlab.experiments.report import build, console_table, group_rows, job_rows, markdown
    from trainlab.experiments.tracking import publish, wandb_settings
    from trainlab.trust.files import record_written, refuse_foreign

    try:
        report = build(args.targets)
    except FileNotFoundError as err:
        print(f"trainlab: error: {err}", file=sys.stderr)
        return 2
    out = args.out or output_dir(args.targets)
    if out is None:
        print(
            "trainlab: error: the runs come from several places; give --out DIR for the report",
            file=sys.stderr,
        )
        return 2
    out.mkdir(parents=True, exist_ok=True)
    existing = [n for n in os.listdir(out) if n in TABLES or n.startswith("report_")]
    try:  # a report replaces only the files an earlier report wrote
        refuse_foreign(out, existing, OWNER)
    except ConfigError as err:
        print(f"trainlab: error: {err}", file=sys.stderr)
        return 2
    report.root = out.resolve()
    images = draw(report, out)
    (out / "report.md").write_text(markdown(report, images))
    jobs, groups = job_rows(report), group_rows(report)
    write_csv(jobs, out / "report.csv")
    write_csv(groups, out / "groups.csv")
    record_written(out, [*TABLES, *(Path(i).name for i in images)], OWNER)

    print(console_table(groups))
    for ablation in report.ablations:
        print(ablation.verdict)
    for line in [*report.order, *report.budget]:
        print(line)
    unusable = [r for r in report.runs if r.status in ("failed", "unreadable", "diverged")]
    for run in unusable:
        print(f"{run.status}: {run.path}: {run.error}")
    settings = wandb_settings(report) if args.wandb != "off" else None
    if args.wandb == "on" and settings is None:
        settings = {}
    if settings is not None:
        print(f"W&B: {publish(report, out, images, jobs, groups, settings)}")
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
