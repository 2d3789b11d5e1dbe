"""What a pruner would have spent and kept on a search that has run: its trials' learning curves
replayed, in the sweep's order, through a fresh Optuna study with that pruner.

The replay is exact when the sampler's choices do not depend on the scores (random or grid
sampling, TPE's random start-up trials) and training is deterministic: the pruned search would
have run the same trials with the same curves, and the pruner sees what it would have seen. With
TPE after its start-up trials it is an estimate: a real pruned search moves its later trials
towards what scored well, which a replay of fixed trials cannot do.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainlab.experiments.runs import Run, curves, find_runs, read_run, select

PRUNER_GROUP = Path("hydra") / "sweeper" / "pruner"


@dataclass
class Trial:
    """One trial as a pruner sees it: the optimised metric after each epoch."""

    number: int
    curve: dict[int, float]  # epoch (counted from 0, the pruner's step) -> the metric after it
    epochs: int  # the epochs it trained
    score: float | None  # its best checkpoint's score; None: the search's own pruner stopped it


@dataclass
class Search:
    """The trials of one sweep directory, in the order they ran."""

    path: Path
    metric: str
    mode: str
    study_name: str
    max_epochs: int
    trials: list[Trial]
    skipped: list[str]  # runs with no curve to replay (failed, diverged, ...), with the reason


@dataclass
class Outcome:
    """One replay: what the search would have spent and the best score it would have kept."""

    epochs: int
    best: float  # the best score among the trials run to their end (nan if none was)
    stopped: dict[int, int]  # trial number -> the epochs it ran, for each trial not run to its end
    unknown: int  # trials the search's pruner stopped that this one would have let go on

    @property
    def pruned(self) -> int:
        return len(self.stopped)


def load_search(sweep: Path, metric: str | None = None) -> Search:
    """The trials of ``sweep`` with their curves of the metric it optimised (or ``metric``)."""
    from trainlab.experiments.report import objective

    runs = [read_run(p) for p in find_runs([sweep])]
    first = next((r for r in runs if r.config), None)
    optimised, mode = objective(first)
    metric = metric or optimised
    trials: list[Trial] = []
    skipped: list[str] = []
    for n, run in enumerate(runs):
        number = run.number if run.number is not None else n
        curve = _curve(run, metric)
        if run.status not in ("ok", "pruned") or not curve:
            why = run.error or (f"no {metric} per epoch" if run.status == "ok" else run.status)
            skipped.append(f"{run.path.name}: {why}")
            continue
        score = run.metrics.get(metric) if run.status == "ok" else None
        trials.append(Trial(number, curve, max(run.epochs or 0, max(curve) + 1), score))
    if not trials:
        raise ValueError(
            f"{sweep}: no trial with a per-epoch {metric} to replay (csv/metrics.csv of each "
            "run); " + ("; ".join(skipped[:3]) or "no runs")
        )
    epochs = [select(r, "trainer.max_epochs") for r in runs]
    return Search(
        path=sweep,
        metric=metric,
        mode=mode,
        study_name=_study_name(first),
        max_epochs=max([int(e) for e in epochs if isinstance(e, int)] or [trials[0].epochs]),
        trials=trials,
        skipped=skipped,
    )


def _curve(run: Run, metric: str) -> dict[int, float]:
    """The metric after each epoch that validated (every epoch, or every k-th)."""
    frame = curves(run)
    if frame is None or metric not in frame:
        return {}
    return {int(epoch): float(value) for epoch, value in frame[metric].dropna().items()}


def _study_name(run: Run | None) -> str:
    """The study's name as the sweeper gave it (``hydra.sweeper.study_name``, resolved against
    the run's config); Hyperband assigns trials to brackets by it."""
    from omegaconf import OmegaConf

    path = run.path / ".hydra" / "hydra.yaml" if run else None
    if path is None or not path.is_file():
        return "trainlab"
    hydra = (yaml.safe_load(path.read_text()) or {}).get("hydra", {})
    merged = OmegaConf.create({**(run.config if run else {}), "hydra": hydra})
    name = OmegaConf.select(
        merged, "hydra.sweeper.study_name", default=None, throw_on_resolution_failure=False
    )
    return str(name) if name else "trainlab"


def pruner_names(config_dir: Path) -> list[str]:
    return sorted(p.stem for p in (config_dir / PRUNER_GROUP).glob("*.yaml"))


def make_pruner(spec: str, config_dir: Path, max_epochs: int) -> Any:
    """An Optuna pruner from a pruner config's name with settings after colons
    (``hyperband:reduction_factor=4``), ``${trainer.max_epochs}`` read as ``max_epochs``.
    Only ``optuna.pruners`` classes are made.

    Raises:
        ValueError: an unknown config or setting, named with the valid ones.
    """
    import optuna
    from omegaconf import OmegaConf

    name, *settings = spec.split(":")
    path = config_dir / PRUNER_GROUP / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"pruner {name!r}: no such config; valid: {pruner_names(config_dir)}")
    from omegaconf.errors import OmegaConfBaseException

    try:
        loaded = OmegaConf.create({"trainer": {"max_epochs": max_epochs}, "pruner": {}})
        loaded.pruner = OmegaConf.load(path) or {}
        resolved: Any = OmegaConf.to_container(loaded, resolve=True)
    except (OmegaConfBaseException, yaml.YAMLError) as err:
        raise ValueError(f"pruner {name!r} ({path}): {str(err).splitlines()[0]}") from err
    options: dict[str, Any] = dict(resolved["pruner"])
    target = str(options.pop("_target_", "optuna.pruners.NopPruner"))
    module, _, cls_name = target.rpartition(".")
    cls = getattr(optuna.pruners, cls_name, None) if module == "optuna.pruners" else None
    if not inspect.isclass(cls):
        raise ValueError(f"pruner {name!r}: _target_ {target} is no optuna.pruners class")
    valid = [p for p in inspect.signature(cls).parameters if p != "self"]
    for setting in settings:
        key, eq, value = setting.partition("=")
        if not eq or key not in valid:
            raise ValueError(
                f"pruner {name!r}: {setting!r} is no key=value of {cls_name}; valid keys: {valid}"
            )
        options[key] = yaml.safe_load(value)
    return cls(**options)


def replay(search: Search, pruner: Any, order: Sequence[int] | None = None) -> Outcome:
    """The search's trials (in ``order``, else as they ran) through a study with ``pruner``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=search.study_name,
        direction="maximize" if search.mode == "max" else "minimize",
        pruner=pruner,
        sampler=optuna.samplers.RandomSampler(seed=0),  # asked nothing: the trials are given
    )
    trials = [search.trials[i] for i in order] if order is not None else search.trials
    epochs = unknown = 0
    stopped: dict[int, int] = {}
    scores: list[float] = []
    for given in trials:
        trial = study.ask()
        ran, prune = given.epochs, False
        for epoch, value in sorted(given.curve.items()):
            trial.report(value, epoch)
            if prune := trial.should_prune():  # the job stops after this epoch, as it does
                ran = epoch + 1
                break
        epochs += ran
        if prune or given.score is None:
            stopped[given.number] = ran
            unknown += not prune  # stopped by the search's pruner, not this one: unknown
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            scores.append(given.score)
            study.tell(trial, given.score)
    pick = max if search.mode == "max" else min
    return Outcome(epochs, pick(scores) if scores else math.nan, stopped, unknown)


def orders(count: int, size: int) -> list[list[int] | None]:
    """The sweep's own order, then ``count - 1`` shuffles of it (seeded: the same every time)."""
    return [None, *(random.Random(k).sample(range(size), size) for k in range(1, count))]
