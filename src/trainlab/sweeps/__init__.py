"""Sweeps that survive a bad job: each failure recorded in its run directory, the others run on,
and one line at the end says how many jobs failed and why."""

from trainlab.sweeps.failures import FAILURE_FILE, SweepSummary, survive

__all__ = ["FAILURE_FILE", "SweepSummary", "survive"]
