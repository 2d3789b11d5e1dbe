"""Lightning callbacks of trainlab's own."""

from trainlab.callbacks.calibration import Calibration

__all__ = ["Calibration"]
