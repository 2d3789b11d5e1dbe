"""Experiments rather than runs: baselines in every run, statistics and reports over sweeps."""
