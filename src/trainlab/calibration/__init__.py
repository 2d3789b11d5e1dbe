"""Calibration: how far a classifier's confidence is from its accuracy, and post-hoc fixes."""

from trainlab.calibration.metrics import calibration_report
from trainlab.calibration.scalers import (
    METHODS,
    Calibrator,
    PlattScaler,
    TemperatureScaler,
    VectorScaler,
    load_calibrator,
    make_calibrator,
)

__all__ = [
    "METHODS",
    "Calibrator",
    "PlattScaler",
    "TemperatureScaler",
    "VectorScaler",
    "calibration_report",
    "load_calibrator",
    "make_calibrator",
]
