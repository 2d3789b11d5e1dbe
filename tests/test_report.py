"""Reports over runs: statistics checked by hand, groups, the ablation view, failed and
unreadable runs, and the real sweep-then-report path a user takes."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from trainlab.experiments.report import build
from trainlab.experiments.report import markdown as report_markdown_of
from trainlab.experiments.stats import (
    bootstrap_interval,
    holm,
    interquartile_mean,
    paired,
    probability_of_improvement,
    summarize,
)
from trainlab.report import main as report_main


def test_mean_interval_and_paired_test_match_a_hand_computation() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, sd sqrt(5/3); t(0.975, df=3) = 3.182446305; half width = t * sd / sqrt(4)
    half = 3.182446305 * math.sqrt(5 / 3) / 2
    assert (s.n, s.mean, s.std) == (4, 2.5, pytest.approx(math.sqrt(5 / 3)))
    assert (s.low, s.high) == (pytest.approx(2.5 - half), pytest.approx(2.5 + half))
    assert math.isnan(summarize([7.0]).std) and summarize([]).n == 0
    assert summarize([1.0, math.nan, 3.0]).n == 2  # a failed run's NaN is left out

    # diffs 1, 2, 2: t = mean / (sd / sqrt(3)) = 5 on 2 df; p = 1 - 5 / sqrt(27)
    test = paired([1.0, 2.0, 3.0], [2.0, 4.0, 5.0])
    assert test.n == 3 and test.diff.mean == pytest.approx(5 / 3)
    assert test.p == pytest.approx(1 - 5 / math.sqrt(27), rel=1e-6)
    with pytest.raises(ValueError, match="differ in length"):
        paired([1.0], [1.0, 2.0])


def test_bootstrap_iqm_improvement_and_holm_match_hand_computations() -> None:
    # Holm: sorted p 0.01, 0.03, 0.04 times 3, 2, 1, kept non-decreasing
    assert holm([0.01, 0.04, 0.03, math.nan])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(holm([0.5, math.nan])[1]) and holm([0.2]) == [0.2]
    # IQM of 8 values: the middle four (3, 4, 5, 6); the outlier 100 does not count
    assert interquartile_mean([1, 2, 3, 4, 100, 5, 6, 7]) == pytest.approx(4.5)
    # a bootstrap interval holds the mean, within the values' range; constant values: a point
    low, high = bootstrap_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert 1.0 <= low < 3.0 < high <= 5.0
    assert bootstrap_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert all(math.isnan(v) for v in bootstrap_interval([1.0]))
    # b wins 3 of 4 pairs: P = 0.75; a tie counts half; lower-is-better flips it
    better = probability_of_improvement([0.9, 0.8, 0.85, 0.7], [0.95, 0.82, 0.84, 0.75])
    assert better.p == 0.75 and 0.0 <= better.low <= 0.75 <= better.high <= 1.0
    assert probability_of_improvement([1.0, 1.0], [1.0, 2.0]).p == 0.75
    assert probability_of_improvement([1.0, 1.0], [1.0, 2.0], higher_is_better=False).p == 0.25


def _run(
    root: Path,
    job: int,
    overrides: list[str],
    metrics: dict[str, float] | None,
    stop: str = "completed trainer.max_epochs=3",
    plateau: bool | None = None,
    compute: dict[str, float] | None = None,
) -> Path:
    path = root / str(job)
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {"optimized_metric": "val/acc", "model": {"monitor": "val/acc", "mode": "max"}}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    if metrics is not None:
        summary = {"metrics": metrics, "epochs": 3, "stop_reason": stop, "plateau": plateau}
        if compute is not None:
            summary["compute"] = compute
        (path / "metrics.json").write_text(json.dumps(summary))
    return path


def _sweep(root: Path) -> None:
    """An ablation over 3 seeds; dropout's removal costs 2 points on every seed."""
    job = 0
    for variant, shift in (("full", 0.0), ("no_dropout", -0.02), ("no_norm", 0.0)):
        for seed, base in ((1, 0.90), (2, 0.92), (3, 0.91)):
            noise = 0.001 * seed if variant == "no_norm" else 0.0
            acc = base + shift + noise
            metrics = {
                "val/acc": acc,
                "test/acc": acc - 0.01,
                "val/loss": 1 - acc,
                "test/loss": 1.01 - acc,
                "baseline/logistic/val/acc": 0.85,
                "baseline/logistic/test/acc": 0.84,
            }
            _run(root, job, [f"ablation={variant}", f"seed={seed}"], metrics)
            job += 1


def test_groups_baselines_and_ablation_verdicts(tmp_path: Path) -> None:
    _sweep(tmp_path)
    report = build([tmp_path])
    assert report.metric == "val/acc" and report.mode == "max" and report.swept == ["ablation"]
    by_label = {g.label: g for g in report.groups}
    full = by_label["ablation=full"].stats["val/acc"]
    assert full.n == 3 and full.mean == pytest.approx(0.91)
    assert full.std == pytest.approx(0.01)  # 0.90, 0.92, 0.91
    assert report.groups[-1].label == "ablation=no_dropout"  # sorted: the worst last
    assert report.baselines["logistic"]["test/acc"].mean == pytest.approx(0.84)

    ablations = {a.component: a for a in report.ablations}
    dropout = ablations["dropout"]
    assert dropout.test.diff.mean == pytest.approx(-0.02) and dropout.test.p < 1e-6
    assert dropout.verdict.startswith("removing dropout worsens val/acc by 2 ± 0 points")
    norm = ablations["norm"]
    assert norm.test.diff.mean == pytest.approx(0.002) and norm.test.p > 0.05
    assert "within seed noise" in norm.verdict
    # Holm over the two removals; the full model wins on every seed without dropout
    assert dropout.holm_p == pytest.approx(min(1.0, 2 * dropout.test.p))
    assert norm.holm_p == pytest.approx(max(dropout.holm_p, norm.test.p))
    assert dropout.full_better.p == 1.0 and norm.full_better.p == 0.0
    assert "Holm p = " in dropout.verdict and "P(full better) = 1 [1, 1]" in dropout.verdict


def test_failed_and_unreadable_runs_are_reported_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = {"val/acc": 0.9, "test/acc": 0.88, "val/loss": 0.3, "test/loss": 0.31}
    _run(tmp_path, 0, ["net.dropout=0.1"], ok)
    failed = _run(tmp_path, 1, ["net.dropout=0.2"], None)  # failed before it was timed
    trace = "Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory\n"
    (failed / "failure.json").write_text(
        json.dumps({"error": "RuntimeError", "message": "CUDA out of memory", "traceback": trace})
    )
    broken = _run(tmp_path, 2, ["net.dropout=0.3"], None)
    (broken / "metrics.json").write_text('{"metrics": {"val/acc": 0.9')  # cut off mid-write
    _run(
        tmp_path,
        3,
        ["net.dropout=0.4"],
        ok,
        stop="diverged at step 40 (epoch 1): loss NaN; x",
        compute={"fit_seconds": 3.0, "cpu_seconds": 5.5, "gpu_seconds": 2.0},
    )

    assert report_main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "failed: " in out and "RuntimeError: CUDA out of memory" in out
    assert "unreadable: " in out and "JSONDecodeError" in out
    assert "diverged: " in out and "diverged at step 40 (epoch 1): loss NaN" in out
    with (tmp_path / "report.csv").open() as f:
        rows = {r["net.dropout"]: r for r in csv.DictReader(f)}
    assert [rows[d]["status"] for d in ("0.1", "0.2", "0.3", "0.4")] == [
        "ok",
        "failed",
        "unreadable",
        "diverged",
    ]
    assert rows["0.2"]["error"] == "RuntimeError: CUDA out of memory"
    assert float(rows["0.1"]["val/acc"]) == 0.9
    # only the last run was timed: every row has its columns, empty where a run has none
    assert (rows["0.4"]["cpu s"], rows["0.4"]["gpu s"]) == ("5.5", "2.0")
    assert (rows["0.2"]["cpu s"], rows["0.2"]["gpu s"]) == ("nan", "nan")
    markdown = (tmp_path / "report.md").read_text()
    jobs = markdown.split("## Jobs", 1)[1].split("\n\n")[1].splitlines()
    assert len({line.count(" | ") for line in jobs if line.startswith("| ")}) == 1, jobs
    assert "4 runs (1 ok, 1 failed, 1 unreadable, 1 diverged)" in markdown
    assert "![report_net.dropout](report_net.dropout.png)" in markdown
    assert (tmp_path / "report_net.dropout.png").stat().st_size > 1000


def test_nothing_to_report_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_main([str(tmp_path)]) == 2
    assert "no run directories" in capsys.readouterr().err
    assert report_main([str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_a_seeded_sweep_then_its_report(tmp_path: Path) -> None:
    """The README's path: sweep two settings over three seeds, one job failing, then report."""
    result = run_cli(
        "trainlab.train",
        "-m",
        "experiment=digits_mlp",
        "net.norm=null,batch,group",
        "seed=1,2,3",
        "trainer.max_epochs=3",
        "callbacks.progress_bar=null",
        "logger=many",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-2000:]  # three jobs failed, the others ran
    assert "6 ok, 3 failed" in result.stderr
    sweep = next((tmp_path / "logs" / "digits_mlp" / "multiruns").iterdir())
    report = run_cli("trainlab.report", str(sweep), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    lines = report.stdout.splitlines()
    batch = next(ln for ln in lines if ln.startswith("net.norm=batch"))
    assert " 3/3 " in batch and "±" in batch and "[" in batch
    assert any(ln.startswith("net.norm=group") and " 0/3 " in ln for ln in lines)
    assert any(ln.startswith("baseline: logistic") for ln in lines)
    assert sum("norm 'group' is unknown" in ln for ln in lines) == 3
    for name in ("report.md", "report.csv", "groups.csv", "report_curves.png"):
        assert (sweep / name).is_file()

    # The runs logged to W&B: their group is the sweep, their names the overrides; the
    # report went to a W&B run of its own, read back offline.
    wandb_cli = Path(sys.executable).with_name("wandb")

    def inspect(run_dir: Path) -> dict:
        read = subprocess.run(
            [str(wandb_cli), "leet", "inspect", "--summary", "--json", str(run_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(read.stdout)

    job = inspect(next((sweep / "0" / "wandb").glob("offline-run-*")))
    assert job["name"].startswith("digits_mlp[") and ",net.norm=null,seed=1," in job["name"]
    own = inspect(next((sweep / "wandb").glob("offline-run-*")))
    assert own["summary"]["report/runs"] == 9
    assert own["summary"]["report/best_group"].startswith("net.norm=")
    assert own["summary"]["report/groups"]["_type"] == "table-file"
    assert own["summary"]["report/report_curves"]["_type"] == "image-file"
    config = yaml.safe_load((sweep / "0" / "config.yaml").read_text())
    assert config["logger"]["wandb"]["group"] == f"digits_mlp/{sweep.name}"


def test_the_ablation_experiment_composes_one_run_per_component_and_seed() -> None:
    from hydra import compose, initialize_config_dir

    from trainlab.runtime.configs import CONFIG_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["experiment=digits_ablation"], return_hydra_config=True)
        params = cfg.hydra.sweeper.params
        assert params.ablation.split(",")[0] == "full" and len(params.seed.split(",")) >= 5
        for variant in params.ablation.split(","):
            ablated = compose("train", ["experiment=digits_ablation", f"ablation={variant}"])
            changed = {k for k in ("norm", "dropout", "residual") if ablated.net[k] != cfg.net[k]}
            assert len(changed) == (0 if variant == "full" else 1), variant


def test_folds_aggregate_like_seeds_and_an_optuna_study_gets_its_trial_plot(
    tmp_path: Path,
) -> None:
    for job, fold in enumerate(range(5)):
        metrics = {"val/acc": 0.8 + 0.01 * fold, "test/acc": 0.8, "val/loss": 0.5}
        path = _run(tmp_path, job, ["data.folds=5", f"data.fold={fold}", "net=mlp"], metrics)
        sweeper = {"hydra": {"sweeper": {"_target_": "hydra_plugins.optuna_sweeper.Sweeper"}}}
        (path / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(sweeper))
    report = build([tmp_path])
    (group,) = report.groups
    assert group.stats["val/acc"].n == 5 and group.stats["val/acc"].mean == pytest.approx(0.82)
    assert report.optuna
    assert report_main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report_trials.png").is_file()


def test_the_permutation_control_is_said_in_words(tmp_path: Path) -> None:
    """A net whose score falls on every seed when the positions are shuffled drew on order;
    one whose score only jitters did not."""
    job = 0
    for experiment, drop in (("conv", 0.3), ("mlp", 0.0)):
        for permute in ("false", "true"):
            for seed, base in ((1, 0.90), (2, 0.92), (3, 0.91)):
                acc = base - (drop if permute == "true" else 0.0)
                acc += 0.002 * seed * (permute == "true") * (experiment == "mlp")
                overrides = [f"+x={experiment}", f"data.permute={permute}", f"seed={seed}"]
                _run(tmp_path, job, overrides, {"val/acc": acc, "val/loss": 1 - acc})
                job += 1
    report = build([tmp_path])
    conv, mlp = report.order
    assert conv.startswith("x=conv: shuffling the positions worsens val/acc by 30 ± 0 points")
    assert conv.endswith("it drew on order")
    assert mlp.startswith("x=mlp: shuffling the positions leaves val/acc within seed noise")
    assert "Order: the permutation control" in (report_markdown := report_markdown_of(report, []))
    assert conv in report_markdown


def test_runs_a_budget_ended_before_their_plateau_are_named(tmp_path: Path) -> None:
    """The report says which groups' runs ran out of epochs while still improving: their
    numbers understate the configuration."""
    job = 0
    for lr, plateaus in (("0.1", (True, True)), ("0.01", (False, True))):
        for seed, plateau in enumerate(plateaus, 1):
            metrics = {"val/acc": 0.9, "val/loss": 0.1}
            _run(tmp_path, job, [f"lr={lr}", f"seed={seed}"], metrics, plateau=plateau)
            job += 1
    _run(tmp_path, job, ["lr=1", "seed=1"], {"val/acc": 0.5, "val/loss": 0.5})  # cannot say
    report = build([tmp_path])
    assert report.budget == [
        "lr=0.01: 1 of 2 runs ended at their budget (trainer.max_epochs or max_steps) before "
        "the monitored metric reached a plateau; more epochs would likely improve them"
    ]
    assert "## Budget" in report_markdown_of(report, [])
    assert report_main([str(tmp_path)]) == 0
    with (tmp_path / "report.csv").open() as handle:
        rows = {(r["lr"], r["seed"]): r["plateau"] for r in csv.DictReader(handle)}
    assert rows == {
        ("0.1", "1"): "yes",
        ("0.1", "2"): "yes",
        ("0.01", "1"): "no",
        ("0.01", "2"): "yes",
        ("1", "1"): "",
    }


def test_the_tuning_curve_is_the_expected_best_of_n_trials() -> None:
    """Dodge et al. 2019: one trial expects the mean; many expect the best; two trials of
    values a < b give b with probability 3/4."""
    import numpy as np

    from trainlab.experiments.stats import expected_max

    values = [0.2, 0.9, 0.5, float("nan")]  # a NaN (a failed trial) is left out
    assert expected_max(values, 1)[0] == pytest.approx(np.mean([0.2, 0.9, 0.5]))
    assert expected_max(values, 200)[0] == pytest.approx(0.9)
    assert expected_max(values, 200)[1] == pytest.approx(0.0, abs=1e-9)
    mean, sd = expected_max([0.0, 1.0], 2)
    assert mean == pytest.approx(0.75) and sd == pytest.approx(np.sqrt(0.75 - 0.75**2))
    rng = np.random.default_rng(0)
    draws = rng.choice([0.2, 0.9, 0.5], size=(100_000, 3)).max(axis=1)
    assert expected_max(values, 3)[0] == pytest.approx(draws.mean(), abs=0.003)
