"""Lightning callbacks of trainlab's own: calibration and training diagnostics."""

from trainlab.callbacks.averaging import SWA
from trainlab.callbacks.calibration import Calibration
from trainlab.callbacks.curves import LearningCurves
from trainlab.callbacks.dead_units import DeadUnits
from trainlab.callbacks.divergence import DivergenceGuard
from trainlab.callbacks.gap import GeneralizationGap
from trainlab.callbacks.gradients import GradientHealth
from trainlab.callbacks.latest import LatestCheckpoint
from trainlab.callbacks.learning import LearningCheck
from trainlab.callbacks.progress import EpochProgress

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
]
