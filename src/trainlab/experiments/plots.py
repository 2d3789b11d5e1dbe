"""The report's pictures: each swept key against the optimised metric, the learning curves of
every group, and an Optuna study's objective by trial."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.experiments.report import Report
from trainlab.experiments.runs import curves
from trainlab.experiments.stats import summarize
from trainlab.trust.files import save_figure


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    _pyplot().close(fig)
    return path


def _numbers(values: list[str]) -> Any:
    """The values as floats when all are numbers and there are more than a few, else None."""
    try:
        numbers = np.array([float(v) for v in values])
    except ValueError:
        return None
    return numbers if len(numbers) > 4 else None


def _order(values: list[str]) -> list[str]:
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def swept_keys(report: Report, out: Path) -> list[Path]:
    """One PNG per swept key: the optimised metric's mean and 95% CI at each of its values
    (over every other setting and repeat)."""
    plt = _pyplot()
    written = []
    ok = [r for r in report.runs if r.status == "ok"]
    for key in report.swept:
        values = _order(list({r.overrides[key] for r in ok if key in r.overrides}))
        stats = [
            summarize(
                [r.metrics.get(report.metric, math.nan) for r in ok if r.overrides.get(key) == v]
            )
            for v in values
        ]
        if not values:
            continue
        numbers = _numbers(values)
        wide = numbers is None and len(values) > 5
        fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(values) + 2) if wide else 5.0, 3.2))
        means = np.array([s.mean for s in stats])
        errors = np.array([s.half_width if math.isfinite(s.half_width) else 0.0 for s in stats])
        if numbers is not None:  # a numeric key (an Optuna interval): values on their own axis
            ax.errorbar(numbers, means, yerr=errors, fmt="o", capsize=4)
            if numbers.min() > 0 and numbers.max() / numbers.min() > 50:
                ax.set_xscale("log")
        else:
            ax.errorbar(range(len(values)), means, yerr=errors, fmt="o", capsize=4)
            ax.set_xticks(range(len(values)), values, rotation=30 if wide else 0)
        ax.set_xlabel(key)
        ax.set_ylabel(report.metric)
        ax.set_title(f"{report.metric} by {key} (mean, 95% CI)")
        ax.grid(alpha=0.3)
        written.append(_save(fig, out / f"report_{key.replace('/', '_')}.png"))
    return written


def learning_curves(report: Report, out: Path) -> list[Path]:
    """Train (dashed) and validation (solid) loss per epoch, averaged over each group's
    repeats, every group in one figure."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    drawn = 0
    for i, group in enumerate(report.groups):
        frames = [f for f in (curves(r) for r in group.finished()) if f is not None]
        color = f"C{i % 10}"
        for column, style in (("train/loss", "--"), ("val/loss", "-")):
            series = [f[column].dropna() for f in frames if column in f]
            if not series:
                continue
            length = min(len(s) for s in series)
            mean = np.mean([s.to_numpy()[:length] for s in series], axis=0)
            label = group.label if column == "val/loss" else None
            ax.plot(np.arange(1, length + 1), mean, style, color=color, label=label)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return []
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (dashed: train, solid: val)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(report.groups) <= 12:
        ax.legend(fontsize=7)
    return [_save(fig, out / "report_curves.png")]


def optuna_trials(report: Report, out: Path) -> list[Path]:
    """The objective of every trial in order, and the best so far."""
    if not report.optuna:
        return []
    runs = sorted((r for r in report.runs if r.number is not None), key=lambda r: r.number or 0)
    if not runs:
        return []
    plt = _pyplot()
    trials = np.array([r.number for r in runs])
    values = np.array([r.metrics.get(report.metric, math.nan) for r in runs])
    best = (np.fmax if report.mode == "max" else np.fmin).accumulate(values)
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    ax.plot(trials, values, "o", label="trial")
    ax.plot(trials, best, "-", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(report.metric)
    ax.grid(alpha=0.3)
    ax.legend()
    return [_save(fig, out / "report_trials.png")]


def tuning_curve(report: Report, out: Path) -> list[Path]:
    """The expected best score of n trials, ± one SD (Dodge et al. 2019)."""
    if not report.tuning:
        return []
    plt = _pyplot()
    n, mean, sd = (np.array(column, dtype=float) for column in zip(*report.tuning, strict=True))
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    ax.plot(n, mean, "o-", label="expected best")
    ax.fill_between(n, mean - sd, mean + sd, alpha=0.25, label="± 1 SD")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("trials")
    ax.set_ylabel(f"expected best {report.metric}")
    ax.grid(alpha=0.3)
    ax.legend()
    return [_save(fig, out / "report_tuning.png")]


def draw(report: Report, out: Path) -> list[Path]:
    return [
        *swept_keys(report, out),
        *learning_curves(report, out),
        *optuna_trials(report, out),
        *tuning_curve(report, out),
    ]
