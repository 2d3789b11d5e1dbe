"""Reliability diagrams: accuracy against confidence per bin, with the confidence histogram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from trainlab.trust.files import save_figure
from trainlab.trust.run_dir import CALIBRATION, PICTURES

PLAIN = FuncFormatter(lambda value, _: f"{value:g}")


def reliability_figure(reports: dict[str, dict[str, Any]], title: str = "") -> Figure:
    """One column per report (e.g. ``{"before": ..., "after": ...}``): bars of accuracy per
    confidence bin against the diagonal of perfect calibration, and under them how many samples
    fall in each bin."""
    fig, axes = plt.subplots(
        2,
        len(reports),
        figsize=(4.2 * len(reports), 5.6),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1]},
        squeeze=False,
    )
    for col, (name, report) in enumerate(reports.items()):
        bins = report["bins"]
        # (n_bins + 1,) bin edges; one step artist per series (bars were ~90 rectangles and
        # most of the drawing time)
        edges = np.array([b["lower"] for b in bins] + [bins[-1]["upper"]])
        acc = np.array([b["accuracy"] for b in bins])
        conf = np.array([b["confidence"] if b["count"] else b["accuracy"] for b in bins])
        counts = np.array([b["count"] for b in bins], dtype=float)
        top, bottom = axes[0][col], axes[1][col]
        top.stairs(acc, edges, fill=True, color="tab:blue", label="accuracy")
        top.stairs(acc, edges, color="black", linewidth=0.5)
        top.stairs(
            np.maximum(acc, conf),
            edges,
            baseline=np.minimum(acc, conf),
            fill=True,
            color="tab:red",
            alpha=0.3,
            label="gap to confidence",
        )
        top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        top.set(
            xlim=(0, 1),
            ylim=(0, 1),
            ylabel="accuracy",
            title=f"{name}: ECE {100 * report['ece']:.2f}%, acc {100 * report['acc']:.1f}%",
        )
        top.legend(loc="upper left", fontsize=8)
        bottom.stairs(counts, edges, fill=True, color="gray")
        bottom.set(xlabel="confidence", ylabel="samples", yscale="symlog")
        bottom.yaxis.set_major_formatter(PLAIN)  # 1, 10, 100: no mathtext to typeset
    if title:
        fig.suptitle(title)
    # A fixed layout: tight_layout measured every tick label and took a third of the drawing.
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.1, top=0.9, hspace=0.08, wspace=0.25)
    return fig


def save_reliability_diagram(
    reports: dict[str, dict[str, Any]], path: Path, title: str = ""
) -> Path:
    fig = reliability_figure(reports, title)
    save_figure(fig, path)
    plt.close(fig)
    return path


def save_risk_coverage(reports: dict[str, dict[str, Any]], path: Path, title: str = "") -> Path:
    """Selective risk against coverage, one line per report of
    :func:`~trainlab.calibration.selective.risk_coverage`, with its AURC in the legend."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, report in reports.items():
        curve = report["risk_by_coverage"]
        ax.plot(
            [float(c) for c in curve],
            list(curve.values()),
            marker=".",
            label=f"{name} (AURC {report['aurc']:.3f})",
        )
    ax.set_xlabel("coverage (share answered)")
    ax.set_ylabel("selective risk (error rate of the answered)")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_title(title or "risk-coverage")
    ax.legend()
    # A fixed layout: tight_layout drew the figure twice.
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.12, top=0.92)
    save_figure(fig, path)
    plt.close(fig)
    return path


def draw_calibration(results: dict[str, Any], out: Path) -> list[Path]:
    """``reliability.png`` and ``risk_coverage.png`` in ``out`` from a run's calibration
    results (what ``calibration.json`` holds): the test split before and after calibration, and
    the selective risk of the calibrated probabilities."""
    reliability, risk = PICTURES[CALIBRATION]
    return [
        save_reliability_diagram(
            {"uncalibrated": results["before"], f"{results['method']} scaling": results["after"]},
            out / reliability,
            title=f"{results.get('evaluated_on', 'test')} split",
        ),
        save_risk_coverage(
            {"calibrated": results["selective"]},
            out / risk,
            f"{results['selective'].get('evaluated_on', 'test')} split",
        ),
    ]
