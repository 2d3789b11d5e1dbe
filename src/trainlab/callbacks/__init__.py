"""Lightning callbacks of trainlab's own: baselines, calibration, training diagnostics and the
W&B run's status.

Each is imported when first named (``trainlab.callbacks.Calibration`` in a config), so a fork
that deletes one of these modules, and the config entry naming it, runs without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainlab.callbacks.averaging import SWA
    from trainlab.callbacks.baselines import ScoreBaselines
    from trainlab.callbacks.calibration import Calibration
    from trainlab.callbacks.curves import LearningCurves
    from trainlab.callbacks.dead_units import DeadUnits
    from trainlab.callbacks.divergence import DivergenceGuard
    from trainlab.callbacks.gap import GeneralizationGap
    from trainlab.callbacks.gradients import GradientHealth
    from trainlab.callbacks.latest import LatestCheckpoint
    from trainlab.callbacks.learning import LearningCheck
    from trainlab.callbacks.progress import EpochProgress
    from trainlab.callbacks.run_status import WandbRunStatus

MODULES = {
    "SWA": "averaging",
    "ScoreBaselines": "baselines",
    "Calibration": "calibration",
    "LearningCurves": "curves",
    "DeadUnits": "dead_units",
    "DivergenceGuard": "divergence",
    "GeneralizationGap": "gap",
    "GradientHealth": "gradients",
    "LatestCheckpoint": "latest",
    "LearningCheck": "learning",
    "EpochProgress": "progress",
    "WandbRunStatus": "run_status",
}
__all__ = [
    "SWA",
    "Calibration",
    "DeadUnits",
    "DivergenceGuard",
    "EpochProgress",
    "GeneralizationGap",
    "GradientHealth",
    "LatestCheckpoint",
    "LearningCheck",
    "LearningCurves",
    "ScoreBaselines",
    "WandbRunStatus",
]


def __getattr__(name: str) -> Any:
    if name not in MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{MODULES[name]}"), name)
