"""Reliability diagrams: accuracy against confidence per bin, with the confidence histogram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


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
        lefts = [b["lower"] for b in bins]
        width = bins[0]["upper"] - bins[0]["lower"]
        top, bottom = axes[0][col], axes[1][col]
        top.bar(
            lefts,
            [b["accuracy"] for b in bins],
            width=width,
            align="edge",
            color="tab:blue",
            edgecolor="black",
            linewidth=0.5,
            label="accuracy",
        )
        filled = [b for b in bins if b["count"]]
        top.bar(
            [b["lower"] for b in filled],
            [abs(b["confidence"] - b["accuracy"]) for b in filled],
            bottom=[min(b["confidence"], b["accuracy"]) for b in filled],
            width=width,
            align="edge",
            color="tab:red",
            alpha=0.3,
            edgecolor="tab:red",
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
        bottom.bar(lefts, [b["count"] for b in bins], width=width, align="edge", color="gray")
        bottom.set(xlabel="confidence", ylabel="samples", yscale="symlog")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_reliability_diagram(
    reports: dict[str, dict[str, Any]], path: Path, title: str = ""
) -> Path:
    fig = reliability_figure(reports, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
