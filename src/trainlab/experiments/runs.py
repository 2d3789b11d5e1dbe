"""Read what runs left on disk: the report needs nothing else (old, partial and copied sweeps
work alike).

A run directory holds ``config.yaml`` (the composed config), ``.hydra/overrides.yaml`` (what the
command line changed), ``metrics.json`` once it finished, ``failure.json`` if it failed inside
a sweep, and ``csv/metrics.csv`` (the learning curves).
"""

from __future__ import annotations

import glob
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainlab.trust.run_dir import CONFIG, FAILURE, METRICS

MARKERS = (CONFIG, METRICS, FAILURE)
REPEATS = ("seed", "data.fold")  # keys that repeat a configuration rather than change it


@dataclass
class Run:
    """One run directory as the report sees it."""

    path: Path
    status: str  # ok, pruned, diverged, failed, incomplete or unreadable
    overrides: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    epochs: int | None = None
    plateau: bool | None = None  # ended on its plateau (early stopping), not at its budget
    number: int | None = None  # the job's number in its sweep
    compute: dict[str, float] = field(default_factory=dict)  # fit_seconds, cpu_seconds, ...

    @property
    def group(self) -> tuple[tuple[str, str], ...]:
        """The overrides that make a configuration: all but the repeats (seed, fold)."""
        return tuple(sorted((k, v) for k, v in self.overrides.items() if k not in REPEATS))

    def repeat(self) -> tuple[str, ...]:
        """What tells repeats of one configuration apart: the seed and the fold."""
        return tuple(self.overrides.get(k, str(_select(self.config, k))) for k in REPEATS)


def _select(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def select(run: Run, dotted: str) -> Any:
    """A value of the run's composed config (``model.monitor``), or None."""
    return _select(run.config, dotted)


def parse_overrides(lines: Iterable[str]) -> dict[str, str]:
    """``["+ablation=no_dropout", "seed=2"]`` -> ``{"ablation": "no_dropout", "seed": "2"}``;
    Hydra's own keys are left out."""
    found = {}
    for line in lines:
        key, _, value = str(line).partition("=")
        key = key.lstrip("+~")
        if key and not key.startswith("hydra."):
            found[key] = value
    return found


def find_runs(targets: Iterable[str | Path]) -> list[Path]:
    """Run directories under each target: a sweep directory, a run directory, or a glob."""
    found: list[Path] = []
    for target in targets:
        paths = [Path(p) for p in sorted(glob.glob(str(target)))] or [Path(target)]
        for path in paths:
            if not path.is_dir():
                raise FileNotFoundError(f"{path}: no such directory")
            if any((path / m).is_file() for m in MARKERS):
                found.append(path)
                continue
            found.extend(
                sorted(
                    {
                        p.parent
                        for m in MARKERS
                        for p in path.rglob(m)
                        if not {"wandb", ".hydra", "csv"} & set(p.relative_to(path).parts)
                    },
                    key=_job_order,
                )
            )
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise FileNotFoundError(
            "no run directories (with config.yaml, metrics.json or failure.json) under "
            + ", ".join(map(str, targets))
        )
    return unique


def _job_order(path: Path) -> tuple[Any, ...]:
    return (str(path.parent), int(path.name) if path.name.isdigit() else math.inf, path.name)


def read_run(path: Path) -> Run:
    """Everything the report shows of one run; a file that cannot be read makes the run
    ``unreadable`` (with the reason), never an error."""
    run = Run(path=path, status="incomplete")
    if path.name.isdigit():
        run.number = int(path.name)
    try:
        if (overrides := path / ".hydra" / "overrides.yaml").is_file():
            run.overrides = parse_overrides(yaml.safe_load(overrides.read_text()) or [])
        if (config := path / CONFIG).is_file():
            run.config = yaml.safe_load(config.read_text()) or {}
        if (failure := path / FAILURE).is_file():
            record = json.loads(failure.read_text())
            lines = [ln for ln in str(record.get("traceback", "")).splitlines() if ln.strip()]
            run.status = "failed"
            run.error = lines[-1] if lines else f"{record.get('error')}: {record.get('message')}"
        elif (metrics := path / METRICS).is_file():
            summary = json.loads(metrics.read_text())
            run.metrics = {str(k): float(v) for k, v in summary["metrics"].items()}
            run.epochs = summary.get("epochs")
            run.compute = {str(k): float(v) for k, v in (summary.get("compute") or {}).items()}
            plateau = summary.get("plateau")
            run.plateau = plateau if isinstance(plateau, bool) else None
            reason = str(summary.get("stop_reason") or "")
            run.status = next((s for s in ("diverged", "pruned") if reason.startswith(s)), "ok")
            if run.status != "ok":
                run.error = reason.split(";")[0]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as err:
        run.status = "unreadable"
        run.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return run


def curves(run: Run) -> Any:
    """The run's per-epoch learning curves during training (a DataFrame indexed by epoch; the
    rows of the validation and test after training left out), or None."""
    import pandas as pd

    path = run.path / "csv" / "metrics.csv"
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    if "epoch" not in frame:
        return None
    frame = frame.groupby("epoch").mean(numeric_only=True)
    return frame[frame.index < run.epochs] if run.epochs is not None else frame
