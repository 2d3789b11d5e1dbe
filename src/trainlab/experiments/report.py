"""A report over any set of runs: one row per job, groups of repeats with confidence intervals,
the baselines as reference rows, an ablation view, and plots.

It reads run directories only (see :mod:`trainlab.experiments.runs`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainlab.experiments.runs import REPEATS, Run, find_runs, read_run, select
from trainlab.experiments.stats import (
    IQM_FROM,
    Improvement,
    Paired,
    Summary,
    bootstrap_interval,
    expected_max,
    holm,
    interquartile_mean,
    paired,
    probability_of_improvement,
    summarize,
)

LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "nll", "ece", "mce", "brier", "error")
PROPORTIONS = ("acc", "f1", "auroc", "precision", "recall", "accuracy")
ABLATION_KEY = "ablation"
FULL = "full"
PERMUTE_KEY = "data.permute"  # the permutation control (see the README, "Order")


def lower_is_better(metric: str) -> bool:
    name = metric.rsplit("/", 1)[-1]
    return any(name.startswith(word) for word in LOWER_IS_BETTER)


@dataclass
class Group:
    """Runs that differ only in their repeats (seed, fold)."""

    key: tuple[tuple[str, str], ...]
    runs: list[Run]
    stats: dict[str, Summary] = field(default_factory=dict)
    swept: tuple[str, ...] = ()  # the keys that differ between groups: the label shows these

    @property
    def label(self) -> str:
        shown = [(k, v) for k, v in self.key if k in self.swept]
        return " ".join(f"{k}={v}" for k, v in shown) or "(all runs)"

    def finished(self) -> list[Run]:
        return [r for r in self.runs if r.status == "ok"]


@dataclass
class Ablation:
    """One removed component against the full model, paired by seed."""

    component: str
    test: Paired
    metric: str
    verdict: str
    full_better: Improvement  # P(the full model beats the one without the component)
    holm_p: float  # the paired t-test's p, Holm-adjusted over the ablation's removals


def _relative(path: Path, root: Path | None) -> str:
    try:
        return str(path.relative_to(root)) if root else str(path)
    except ValueError:
        return str(path)


@dataclass
class Report:
    runs: list[Run]
    metric: str  # the optimised metric
    mode: str  # "max" or "min"
    headline: list[str]
    swept: list[str]
    groups: list[Group]
    baselines: dict[str, dict[str, Summary]]
    ablations: list[Ablation]
    optuna: bool
    order: list[str] = field(default_factory=list)  # the permutation control, in words
    budget: list[str] = field(default_factory=list)  # groups whose runs ended before a plateau
    tuning: list[tuple[int, float, float]] = field(default_factory=list)  # n, E[best of n], SD
    root: Path | None = None  # where the report is written; job paths are shown relative to it

    @property
    def best(self) -> Group | None:
        scored = [g for g in self.groups if math.isfinite(g.stats[self.metric].mean)]
        return scored[0] if scored else None


def objective(run: Run | None) -> tuple[str, str]:
    """The metric the runs optimised and its mode (``max``: higher is better), from one run's
    config: ``optimized_metric``, with ``model.mode`` when the model monitors that metric."""
    metric = str(select(run, "optimized_metric") or "val/loss") if run else "val/loss"
    mode = "min" if lower_is_better(metric) else "max"
    if run is not None and select(run, "model.monitor") == metric:
        mode = str(select(run, "model.mode") or mode)
    return metric, mode


def build(targets: Iterable[str | Path]) -> Report:
    """Read every run under ``targets`` and work out groups, baselines and the ablation view."""
    runs = [read_run(path) for path in find_runs(targets)]
    readable = [r for r in runs if r.config]
    metric, mode = objective(readable[0] if readable else None)
    headline = _headline(runs, metric)

    keys = sorted({k for r in runs for k in r.overrides if k not in REPEATS})
    swept = [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]
    groups: dict[tuple[tuple[str, str], ...], Group] = {}
    for run in runs:
        groups.setdefault(run.group, Group(run.group, [], swept=tuple(swept))).runs.append(run)
    for group in groups.values():
        ok = group.finished()
        group.stats = {m: summarize([r.metrics.get(m, math.nan) for r in ok]) for m in headline}
    sign = -1.0 if mode == "max" else 1.0
    ordered = sorted(
        groups.values(),
        key=lambda g: (
            not math.isfinite(g.stats[metric].mean),
            sign * g.stats[metric].mean if math.isfinite(g.stats[metric].mean) else 0.0,
        ),
    )
    return Report(
        runs=runs,
        metric=metric,
        mode=mode,
        headline=headline,
        swept=swept,
        groups=ordered,
        baselines=_baselines(runs, headline),
        ablations=_ablations(runs, metric, mode, swept),
        optuna=any(_optuna_run(r) for r in runs),
        order=_permutation_control(runs, metric, mode, swept),
        budget=_budget(ordered),
        tuning=tuning_curve(runs, metric, mode) if any(_optuna_run(r) for r in runs) else [],
    )


def scored_trials(runs: Sequence[Run], metric: str) -> list[Run]:
    """The trials of a search with a score: finished or pruned (a pruned trial scores its best
    checkpoint when it was stopped)."""
    return [
        r
        for r in runs
        if r.status in ("ok", "pruned") and math.isfinite(r.metrics.get(metric, math.nan))
    ]


def tuning_curve(runs: Sequence[Run], metric: str, mode: str) -> list[tuple[int, float, float]]:
    """The expected best ``metric`` of n trials and its SD, for n = 1, 2, 4, ... and all of them
    (Dodge et al. 2019), from the scored trials."""
    sign = 1.0 if mode == "max" else -1.0
    values = [sign * r.metrics[metric] for r in scored_trials(runs, metric)]
    if not values:
        return []
    sizes = sorted(
        {*(2**k for k in range(len(values).bit_length()) if 2**k <= len(values)), len(values)}
    )
    return [(n, sign * m, sd) for n in sizes for m, sd in [expected_max(values, n)]]


def ledger(report: Report) -> dict[str, Any]:
    """The compute a search spent: per trial and in all, and the share its pruned trials took."""
    runs = [r for r in report.runs if r.compute]
    total = {
        k: sum(
            r.compute.get(k, 0.0)
            * (r.compute.get("world_size", 1.0) if k != "fit_seconds" else 1.0)
            for r in runs
        )
        for k in ("fit_seconds", "cpu_seconds", "gpu_seconds")
    }
    pruned = [r for r in runs if r.status == "pruned"]
    epochs = sum(r.epochs or 0 for r in runs)
    return {
        "trials": len(runs),
        "pruned": len(pruned),
        "epochs": epochs,
        "pruned_epochs": sum(r.epochs or 0 for r in pruned),
        **total,
        "pruned_cpu_seconds": sum(r.compute.get("cpu_seconds", 0.0) for r in pruned),
    }


def _budget(groups: Sequence[Group]) -> list[str]:
    """A line for each group with runs that a budget ended before their plateau: its numbers
    understate what the configuration reaches."""
    lines = []
    for group in groups:
        short = [r for r in group.finished() if r.plateau is False]
        if short:
            lines.append(
                f"{group.label}: {len(short)} of {len(group.finished())} runs ended at their "
                "budget (trainer.max_epochs or max_steps) before the monitored metric reached a "
                "plateau; more epochs would likely improve them"
            )
    return lines


def _headline(runs: Sequence[Run], metric: str) -> list[str]:
    """The optimised metric, then val and test of it, of the loss and of one more metric the
    runs logged for both splits (the model's first)."""
    logged = [k.split("/", 1)[1] for r in runs for k in r.metrics if k.startswith("val/")]
    both = [n for n in dict.fromkeys(logged) if any(f"test/{n}" in r.metrics for r in runs)]
    names = list(dict.fromkeys([metric.split("/", 1)[-1], "loss", *both]))[:3]
    found = [f"{split}/{name}" for name in names for split in ("val", "test")]
    return [metric, *[m for m in found if m != metric]]


def _optuna_run(run: Run) -> bool:
    """Whether Hydra's Optuna sweeper launched the run (its ``.hydra/hydra.yaml`` says)."""
    try:
        hydra = yaml.safe_load((run.path / ".hydra" / "hydra.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    sweeper = (hydra.get("hydra") or {}).get("sweeper") or {}
    return "optuna" in str(sweeper.get("_target_", "")).lower()


def _baselines(runs: Sequence[Run], headline: Sequence[str]) -> dict[str, dict[str, Summary]]:
    names = sorted({k.split("/")[1] for r in runs for k in r.metrics if k.startswith("baseline/")})
    ok = [r for r in runs if r.status == "ok"]
    return {
        name: {
            m: summarize([r.metrics.get(f"baseline/{name}/{m}", math.nan) for r in ok])
            for m in headline
        }
        for name in names
    }


def _by_value(
    runs: Sequence[Run], key: str, metric: str, swept: Sequence[str]
) -> dict[tuple[Any, ...], dict[str, dict[tuple[str, ...], float]]]:
    """The finished runs that set ``key``: by their other swept settings, then by ``key``'s
    value (lowercased), then by repeat (seed, fold): ``metric``."""
    found: dict[tuple[Any, ...], dict[str, dict[tuple[str, ...], float]]] = {}
    for run in runs:
        if run.status != "ok" or key not in run.overrides:
            continue
        rest = tuple((k, v) for k, v in run.group if k != key and k in swept)
        value = str(run.overrides[key]).lower()
        found.setdefault(rest, {}).setdefault(value, {})[run.repeat()] = run.metrics.get(
            metric, math.nan
        )
    return found


def _ablations(runs: Sequence[Run], metric: str, mode: str, swept: Sequence[str]) -> list[Ablation]:
    """Each ``ablation=<variant>`` against ``ablation=full``, paired by seed (and fold) within
    the same other overrides."""
    found: list[tuple[str, Paired, Improvement]] = []
    for rest, by_variant in _by_value(runs, ABLATION_KEY, metric, swept).items():
        full = by_variant.get(FULL)
        if full is None:
            continue
        for variant, values in sorted(by_variant.items()):
            if variant == FULL:
                continue
            seeds = sorted(set(full) & set(values))
            a, b = [values[s] for s in seeds], [full[s] for s in seeds]
            test = paired(b, a)  # the change that removing the component makes
            better = probability_of_improvement(a, b, higher_is_better=mode == "max")
            component = variant.removeprefix("no_").replace("_", " ")
            if rest:
                component += " (" + " ".join(f"{k}={v}" for k, v in rest) + ")"
            found.append((component, test, better))
    adjusted = holm([test.p for _, test, _ in found])
    return [
        Ablation(c, test, metric, _verdict(c, test, metric, mode, better, p), better, p)
        for (c, test, better), p in zip(found, adjusted, strict=True)
    ]


def _change(test: Paired, metric: str, mode: str) -> tuple[bool, str, str]:
    """Whether the paired change worsens ``metric``, its size (``"1.2 ± 0.4 points"``: ± is the
    interval's half-width; points for proportions) and its 95% interval, in words."""
    points = metric.rsplit("/", 1)[-1].startswith(PROPORTIONS)
    scale, unit = (100.0, " points") if points else (1.0, "")
    d = test.diff
    worse = d.mean < 0 if mode == "max" else d.mean > 0
    size = f"{abs(d.mean) * scale:.3g} ± {d.half_width * scale:.2g}{unit}"
    interval = f"95% CI of the change [{d.low * scale:+.3g}, {d.high * scale:+.3g}]"
    return worse, size, interval


def _permutation_control(
    runs: Sequence[Run], metric: str, mode: str, swept: Sequence[str]
) -> list[str]:
    """For each setting swept with ``data.permute=false,true``: what shuffling the positions
    did to ``metric``, paired by seed, in words. A net that drew on order loses; one that
    cannot see order (an MLP) stays within seed noise."""
    if PERMUTE_KEY not in swept:
        return []
    lines = []
    for rest, by_value in _by_value(runs, PERMUTE_KEY, metric, swept).items():
        ordered, shuffled = by_value.get("false"), by_value.get("true")  # values lowercased
        if not ordered or not shuffled:
            continue
        seeds = sorted(set(ordered) & set(shuffled))
        test = paired([ordered[s] for s in seeds], [shuffled[s] for s in seeds])
        label = " ".join(f"{k}={v}" for k, v in rest) or "the runs"
        if test.n < 2:
            lines.append(f"{label}: too few paired seeds ({test.n}) to judge the permutation")
            continue
        worse, size, interval = _change(test, metric, mode)
        numbers = f"{interval}, p = {test.p:.2g}, n = {test.n}"
        if test.p >= 0.05:
            lines.append(
                f"{label}: shuffling the positions leaves {metric} within seed noise "
                f"({size}; {numbers}): this net draws nothing from order here"
            )
        else:
            effect = "worsens" if worse else "improves"
            meaning = "it drew on order" if worse else "order misled it"
            lines.append(
                f"{label}: shuffling the positions {effect} {metric} by {size} ({numbers}): "
                f"{meaning}"
            )
    return lines


def _verdict(
    component: str, test: Paired, metric: str, mode: str, better: Improvement, holm_p: float
) -> str:
    """``"removing norm worsens val/acc by 1.2 ± 0.4 points (95% CI of the change [-1.6,
    -0.8], p = 0.01, Holm p = 0.03; P(full better) = 0.9 [0.6, 1], n = 5)"``; ± is the
    interval's half-width. Seed noise is judged on the Holm-adjusted p."""
    if test.n < 2:
        return f"removing {component}: too few paired seeds ({test.n}) to judge"
    worse, size, interval = _change(test, metric, mode)
    effect = "worsens" if worse else "improves"
    text = f"removing {component} {effect} {metric} by {size} ({interval}, p = {test.p:.2g}"
    text += f", Holm p = {holm_p:.2g}; P(full better) = {better.p:.2g}"
    text += f" [{better.low:.2g}, {better.high:.2g}], n = {test.n})"
    return text if holm_p < 0.05 else text + ": within seed noise"


# -- tables ---------------------------------------------------------------------------------
def _fmt(value: float, digits: int = 4) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _cell(s: Summary) -> str:
    if s.n == 0:
        return ""
    if s.n == 1:
        return _fmt(s.mean)
    return f"{_fmt(s.mean)} ± {_fmt(s.std, 2)} [{_fmt(s.low)}, {_fmt(s.high)}]"


def job_rows(report: Report) -> list[dict[str, Any]]:
    """One row per job: overrides, status, error, epochs and headline metrics."""
    timed = any(run.compute for run in report.runs)
    on_gpu = any(run.compute.get("gpu_seconds") for run in report.runs)
    rows = []
    for run in report.runs:
        row: dict[str, Any] = {
            "job": run.number if run.number is not None else "",
            "run": _relative(run.path, report.root),
            **{k: run.overrides.get(k, "") for k in [*report.swept, *REPEATS]},
            "status": run.status,
            "error": run.error,
            "epochs": run.epochs if run.epochs is not None else "",
            "plateau": {True: "yes", False: "no", None: ""}[run.plateau],
        }
        if timed:  # every row has the columns; a run that failed before timing shows none
            row["cpu s"] = round(run.compute.get("cpu_seconds", math.nan), 1)
        if on_gpu:
            row["gpu s"] = round(run.compute.get("gpu_seconds", math.nan), 1)
        row.update({m: run.metrics.get(m, math.nan) for m in report.headline})
        rows.append(row)
    return rows


def group_rows(report: Report) -> list[dict[str, Any]]:
    """One row per group (and per baseline): n, then mean ± std [95% CI] per headline metric."""
    best = report.best
    rows = []
    for group in report.groups:
        row: dict[str, Any] = {
            "group": group.label + (" (best)" if group is best else ""),
            "n": f"{len(group.finished())}/{len(group.runs)}",
        }
        row.update({m: _cell(group.stats[m]) for m in report.headline})
        values = [r.metrics.get(report.metric, math.nan) for r in group.finished()]
        low, high = bootstrap_interval(values)
        row[f"{report.metric} bootstrap CI"] = (
            f"[{_fmt(low)}, {_fmt(high)}]" if math.isfinite(low) else ""
        )
        if any(len(g.finished()) >= IQM_FROM for g in report.groups):
            iqm = interquartile_mean(values) if len(values) >= IQM_FROM else math.nan
            row[f"{report.metric} IQM"] = _fmt(iqm)
        rows.append(row)
    for name, stats in report.baselines.items():
        row = {"group": f"baseline: {name}", "n": str(max(s.n for s in stats.values()))}
        row.update({m: _cell(stats[m]) for m in report.headline})
        rows.append({**{k: "" for k in rows[0]}, **row} if rows else row)
    return rows


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every key of ``rows`` in the order first seen: a row that lacks one shows it empty."""
    return list(dict.fromkeys(key for row in rows for key in row))


def _cells(row: dict[str, Any], columns: Sequence[str]) -> list[str]:
    values = [row.get(c, "") for c in columns]
    return [_fmt(v) if isinstance(v, float) else str(v) for v in values]


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "(none)\n"
    columns = columns_of(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = _cells(row, columns)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def console_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "(none)"
    columns = columns_of(rows)
    cells = [_cells(row, columns) for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def markdown(report: Report, images: Sequence[Path]) -> str:
    statuses = [r.status for r in report.runs]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    best = report.best
    parts = [
        "# Report\n",
        f"{len(report.runs)} runs ({counts}); optimised metric `{report.metric}` "
        f"({'higher' if report.mode == 'max' else 'lower'} is better); swept: "
        f"{', '.join(report.swept) or 'nothing but repeats'}.\n",
        f"Best group: **{best.label}**.\n" if best else "",
        "\n## Groups\n\nmean ± std [95% t-interval] over the repeats (seeds, folds) of each "
        "configuration, and the 95% percentile-bootstrap interval of the optimised metric's "
        "mean (no normality assumed; read it when a few seeds fail or stray); the "
        f"interquartile mean (IQM) for groups of {IQM_FROM} or more repeats. Baselines are "
        "fitted in every run on the same splits.\n",
        markdown_table(group_rows(report)),
    ]
    if report.ablations:
        parts += [
            "\n## Ablation\n\nEach component removed from the full model, paired by seed; "
            "± is the half-width of the 95% CI. p is the paired t-test's; Holm p adjusts it for "
            "testing every removal at once, and decides what is within seed noise. "
            "P(full better) is the share of seeds on which the full model wins (ties half), "
            "with its bootstrap interval.\n"
        ]
        parts += [f"- {a.verdict}\n" for a in report.ablations]
    if report.order:
        parts += [
            "\n## Order: the permutation control\n\nEach setting with its positions shuffled "
            "(`data.permute=true`: one fixed permutation of the time steps or pixels) against "
            "the same setting in order, paired by seed.\n"
        ]
        parts += [f"- {line}\n" for line in report.order]
    if report.budget:
        parts += ["\n## Budget\n\n", *[f"- {line}\n" for line in report.budget]]
    if report.tuning:
        parts += tuning_section(report)
    parts += ["\n## Jobs\n\n", markdown_table(job_rows(report))]
    if images:
        parts += ["\n## Plots\n\n", *[f"![{p.stem}]({p.name})\n" for p in images]]
    return "".join(parts)


def tuning_section(report: Report) -> list[str]:
    """The tuning curve, the compute ledger and how to read their error bars."""
    spent = ledger(report)
    scored = scored_trials(report.runs, report.metric)
    seeds = sorted({str(r.overrides.get("seed", select(r, "seed"))) for r in scored})
    rows = [
        {"trials": n, f"expected best {report.metric}": _fmt(m), "SD": _fmt(sd)}
        for n, m, sd in report.tuning
    ]
    share = spent["pruned_epochs"] / spent["epochs"] if spent["epochs"] else math.nan
    cpu_share = (
        spent["pruned_cpu_seconds"] / spent["cpu_seconds"] if spent["cpu_seconds"] else math.nan
    )
    return [
        "\n## Tuning curve\n\nThe expected best validation score of a search of n trials, with "
        f"its standard deviation, from the {len(scored)} scored trials (Dodge et al. 2019).\n\n",
        markdown_table(rows),
        "\n## Compute ledger\n\n",
        f"{spent['trials']} trials, {spent['pruned']} pruned; {spent['epochs']} epochs, "
        f"{spent['pruned_epochs']} of them in pruned trials ({share:.0%}); "
        f"{spent['cpu_seconds']:.0f} CPU-seconds ({cpu_share:.0%} in pruned trials), "
        f"{spent['gpu_seconds']:.0f} GPU-seconds, {spent['fit_seconds']:.0f} s of training "
        "wall time. Per trial: the Jobs table's `cpu s` (the training process and the data "
        "workers it ended; GPU seconds are wall seconds times the GPUs of each rank).\n",
        "\n## Variability and error bars\n\n"
        f"Sources of variability: each trial is one training run with one seed "
        f"({len(seeds)} seed value{'s' if len(seeds) != 1 else ''} over the trials: "
        f"{', '.join(seeds[:5])}{', ...' if len(seeds) > 5 else ''}), so a trial's score mixes "
        "the effect of its hyperparameters with seed noise (initialisation, data order, dropout "
        "masks); the data split is fixed by data.split_seed; the sampler's seed decides which "
        "configurations are tried. The tuning curve's ± is one standard deviation (SD, not a "
        "standard error) of the best of n trials drawn with replacement from the trials "
        "observed; it treats the trials as exchangeable, exact for random search and an "
        "approximation for TPE, whose later trials depend on earlier ones. Pruned trials "
        "count with the score of their best checkpoint when they were stopped. To state a "
        "configuration's score, rerun it over several seeds: the Groups table gives mean ± SD "
        "with a 95% t-interval and a percentile-bootstrap interval over those seeds.\n",
    ]
