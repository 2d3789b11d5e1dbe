"""A run directory's layout: every file a run writes and eval, predict, export, reports and
sweeps read back, named in one place.

::

    config.yaml        the resolved config (eval and predict rebuild the run from it)
    data.json          each data file or folder read: path, size, digest
    env.json           commit, packages, host, threads, SLURM ids (and ranks)
    classes.json       class names in index order (classification)
    metrics.json       val and test metrics of the best checkpoint, stop reason, compute
    learning_curves.json, calibration.json   the numbers of the run's pictures (.png)
    diagnostics.json   what the diagnostics found
    failure.json       the error of a job that failed (a sweep goes on)
    checkpoints/       best.ckpt, last.ckpt (to resume), last.previous.ckpt
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.yaml"
DATA = "data.json"
ENV = "env.json"
CLASSES = "classes.json"
METRICS = "metrics.json"
DIAGNOSTICS = "diagnostics.json"
FAILURE = "failure.json"
CHECKPOINTS = "checkpoints"
LEARNING_CURVES = "learning_curves.json"
CALIBRATION = "calibration.json"
# The pictures a run draws from those two (figures=auto: a single run does, a sweep's jobs do
# not; python -m trainlab.figures draws them later).
PICTURES = {
    LEARNING_CURVES: ("learning_curves.png",),
    CALIBRATION: ("reliability.png", "risk_coverage.png"),
}
# What a run leaves that must not be written over: a directory holding any of these holds a run
# (eval and predict write the last two into theirs).
RESULTS = (CONFIG, METRICS, FAILURE, CHECKPOINTS, "eval_metrics.json", "predictions.csv")


@dataclass(frozen=True)
class RunDir:
    """One run directory: where each of its files is."""

    path: Path

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def env(self) -> Path:
        return self.path / ENV

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def latest(self) -> Path:
        """``checkpoints/last.ckpt``: the state a resumed run continues from."""
        return self.checkpoints / "last.ckpt"

    @property
    def previous(self) -> Path:
        """The latest checkpoint before ``latest`` (kept while a new one is written)."""
        return self.checkpoints / "last.previous.ckpt"

    def held(self, sweep: bool = False) -> list[str]:
        """The results the directory holds (of a sweep: in its job folders), relative to it."""
        if not self.path.is_dir():
            return []
        folders = [self.path]
        if sweep:
            folders += sorted(p for p in self.path.iterdir() if p.is_dir() and p.name.isdigit())
        return [
            str((folder / name).relative_to(self.path))
            for folder in folders
            for name in RESULTS
            if (folder / name).exists()
        ]
