"""Lightning callbacks of trainlab's own: calibration and training diagnostics."""

from trainlab.callbacks.calibration import Calibration
from trainlab.callbacks.checkpoint import Checkpoint
from trainlab.callbacks.curves import LearningCurves
from trainlab.callbacks.dead_units import DeadUnits
from trainlab.callbacks.divergence import DivergenceGuard
from trainlab.callbacks.gradients import GradientHealth
from trainlab.callbacks.progress import EpochProgress

__all__ = [
    "Calibration",
    "Checkpoint",
    "DeadUnits",
    "DivergenceGuard",
    "EpochProgress",
    "GradientHealth",
    "LearningCurves",
]
