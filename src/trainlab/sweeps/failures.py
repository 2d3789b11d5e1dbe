"""One job of a sweep fails alone; the sweep says so at its end.

Imported when Hydra starts (its callbacks are built before the job runs), so nothing heavy here.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from trainlab.trust.files import write_atomic
from trainlab.trust.secrets import redact

log = logging.getLogger(__name__)
T = TypeVar("T")
FAILURE_FILE = "failure.json"
SHOWN = 5  # failures named in the summary line


def survive(job: Callable[[], T], output_dir: str | Path) -> T | None:
    """Run ``job``; if it raises (a bad value, a crash, out of memory), write the error and its
    traceback to ``<output_dir>/failure.json``, log it, and return None so that the sweep goes
    on. Ctrl-C still stops the sweep."""
    try:
        return job()
    except Exception as err:
        record = {
            "status": "failed",
            "error": type(err).__name__,
            "message": str(err),
            "traceback": traceback.format_exc(),
        }
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / FAILURE_FILE, redact(json.dumps(record, indent=2)))
        log.error(
            "job failed, the sweep goes on: %s: %s\n%s", record["error"], err, record["traceback"]
        )
        return None


def summarize(sweep_dir: Path) -> tuple[str, bool]:
    """``"3 ok, 1 failed: job 2 (RuntimeError: ...)"`` for the jobs under ``sweep_dir``, and
    whether any failed."""
    jobs = sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    failed: list[str] = []
    ok = 0
    for job in jobs:
        failure = job / FAILURE_FILE
        if failure.is_file():
            record: dict[str, Any] = json.loads(failure.read_text())
            first_line = str(record.get("message", "")).strip().splitlines()[:1]
            failed.append(f"job {job.name} ({record.get('error')}: {''.join(first_line)})")
        elif (job / "metrics.json").is_file():
            ok += 1
    line = f"{ok} ok, {len(failed)} failed"
    if failed:
        more = f"; {len(failed) - SHOWN} more" if len(failed) > SHOWN else ""
        line += ": " + "; ".join(failed[:SHOWN]) + more + f" (each job's {FAILURE_FILE})"
    return line, bool(failed)


class SweepSummary(Callback):
    """At the end of a multirun, prints one line for the whole sweep and exits with status 1
    when any job failed (each failure is in its job's ``failure.json``)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        line, any_failed = summarize(sweep_dir)
        print(f"sweep {sweep_dir}: {line}", file=sys.stderr if any_failed else sys.stdout)
        if any_failed:
            raise SystemExit(1)
