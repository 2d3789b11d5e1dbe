"""The report as a W&B run of its own, next to the runs it summarises (offline without a key)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainlab.experiments.report import Report, columns_of
from trainlab.experiments.runs import select


def wandb_settings(report: Report) -> dict[str, Any] | None:
    """The W&B logger settings of the first run that logged to W&B, or None."""
    for run in report.runs:
        found = select(run, "logger.wandb")
        if isinstance(found, dict):
            return found
    return None


def publish(
    report: Report,
    out: Path,
    images: Sequence[Path],
    jobs: Sequence[dict[str, Any]],
    groups: Sequence[dict[str, Any]],
    settings: dict[str, Any],
) -> str:
    """Log the tables and plots to a new W&B run (``job_type="report"``, in the runs' project
    and group); returns where it went."""
    import wandb

    from trainlab.loggers.wandb import has_wandb_api_key

    offline = settings.get("offline")
    if offline is None:
        offline = os.environ.get("WANDB_MODE") in ("offline", "disabled") or not has_wandb_api_key()
    best = report.best
    run = wandb.init(
        project=settings.get("project") or "trainlab",
        group=settings.get("group"),
        name=f"report {out.name}",
        job_type="report",
        dir=str(out),
        mode="offline" if offline else "online",
        config={"metric": report.metric, "mode": report.mode, "swept": report.swept},
    )
    try:
        logged: dict[str, Any] = {
            "report/groups": _table(groups),
            "report/jobs": _table(jobs),
            **{f"report/{p.stem}": wandb.Image(str(p)) for p in images},
        }
        run.log(logged)
        run.summary["report/best_group"] = best.label if best else None
        run.summary["report/runs"] = len(report.runs)
        for ablation in report.ablations:
            run.summary[f"report/ablation/{ablation.component}"] = ablation.verdict
        where = run.dir if offline else str(run.url)
    finally:
        run.finish()
    return str(where)


def _table(rows: Sequence[dict[str, Any]]) -> Any:
    import wandb

    columns = columns_of(rows)
    data = [[str(row.get(c, "")) for c in columns] for row in rows]
    return wandb.Table(columns=list(columns), data=data)
