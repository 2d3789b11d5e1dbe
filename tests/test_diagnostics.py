"""Each diagnostic fires on a run built to fail its way, and stays quiet on a healthy run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import DictConfig

from trainlab.callbacks import DeadUnits, DivergenceGuard, GradientHealth, LearningCheck
from trainlab.callbacks.divergence import divergence
from trainlab.callbacks.gradients import exploding, vanishing_layers
from trainlab.callbacks.learning import loss_stalled
from trainlab.data import InMemoryDataModule, Loaded
from trainlab.data.base import count_shared_samples
from trainlab.errors import ConfigError
from trainlab.runtime.training import fit

MakeCfg = Callable[..., DictConfig]
QUICK = ["callbacks.progress_bar=null", "trainer.accelerator=cpu", "callbacks.calibration=null"]


def run(make_cfg: MakeCfg, *overrides: str) -> tuple[dict[str, object], dict[str, object], Path]:
    cfg = make_cfg(*overrides, *QUICK)
    fit(cfg)
    out = Path(cfg.paths.output_dir)
    return (
        json.loads((out / "diagnostics.json").read_text()),
        json.loads((out / "metrics.json").read_text()),
        out,
    )


def kinds(diagnostics: dict[str, object], part: str) -> list[str]:
    return [e["kind"] for e in diagnostics[part]["events"]]  # type: ignore[index]


def test_healthy_run_is_quiet_and_leaves_gap_and_curves(make_cfg: MakeCfg) -> None:
    diagnostics, summary, out = run(
        make_cfg, "trainer.max_epochs=4", "callbacks.gradient_health.every_n_steps=5"
    )
    assert kinds(diagnostics, "gradient_health") == [] and kinds(diagnostics, "dead_units") == []
    assert kinds(diagnostics, "learning") == []
    assert diagnostics["gradient_health"]["measurements"] == 16  # type: ignore[index]
    assert diagnostics["divergence"] is None and summary["stop_reason"].startswith("completed")
    assert diagnostics["leakage"] == {"train/val": 0, "train/test": 0, "val/test": 0}
    curves = pd.read_csv(out / "csv" / "metrics.csv")
    epochs = curves.dropna(subset=["gap/loss"])
    assert len(epochs) == 4
    both = curves.groupby("epoch").first().dropna(subset=["gap/loss"])
    assert np.allclose(both["gap/loss"], both["train/loss"] - both["val/loss"], atol=1e-6)
    assert np.allclose(both["gap/acc"], both["train/acc"] - both["val/acc"], atol=1e-6)
    assert {c for c in curves.columns if c.startswith("grad_norm/")} >= {
        "grad_norm/total",
        "grad_norm/net.head.weight",
    }
    # every measurement reaches the logger, at its own optimiser step
    norms = curves.dropna(subset=["grad_norm/total"])
    assert len(norms) == 16 and (norms["step"] % 5 == 0).all()
    assert (out / "learning_curves.png").stat().st_size > 10_000


def test_vanishing_gradients_in_a_deep_sigmoid_mlp(make_cfg: MakeCfg) -> None:
    diagnostics, _, _ = run(
        make_cfg,
        "trainer.max_epochs=1",
        "net.hidden_sizes=[64,64,64,64,64,64,64,64]",
        "net.activation=sigmoid",
        "net.dropout=0",
        "callbacks.gradient_health.every_n_steps=5",
    )
    events = diagnostics["gradient_health"]["events"]  # type: ignore[index]
    assert [e["kind"] for e in events] == ["vanishing_gradients"]
    assert "net.body.0.layers.0.weight" in events[0]["layers"] and "ReLU" in events[0]["message"]


def test_huge_learning_rate_stops_the_run_and_keeps_the_last_good_checkpoint(
    make_cfg: MakeCfg,
) -> None:
    diagnostics, summary, out = run(
        make_cfg,
        "trainer.max_epochs=6",
        "callbacks.early_stopping=null",
        "+callbacks.blow_up._target_=tests.helpers.BlowUpLearningRate",
        "+callbacks.blow_up.epoch=2",
        "+callbacks.blow_up.lr=1e4",
    )
    event = diagnostics["divergence"]
    assert event is not None and event["epoch"] == 2 and event["lr"] == 1e4  # type: ignore[index]
    assert summary["stop_reason"].startswith(f"diverged at step {event['step']} (epoch 2)")  # type: ignore[index]
    assert "learning rate 1e+04" in summary["stop_reason"] and summary["epochs"] <= 3
    kept = Path(event["last_good_checkpoint"])  # type: ignore[index]
    assert kept == out / "checkpoints" / "last-good.ckpt"
    weights = torch.load(kept, weights_only=True)
    assert weights["epoch"] == 1 and all(
        torch.isfinite(v).all() for v in weights["state_dict"].values()
    )
    assert np.isfinite(summary["metrics"]["test/acc"]) and summary["metrics"]["test/acc"] > 0.8  # type: ignore[index]


def test_dead_units_after_a_strongly_negative_bias(make_cfg: MakeCfg) -> None:
    diagnostics, _, out = run(
        make_cfg,
        "trainer.max_epochs=2",
        "+callbacks.kill._target_=tests.helpers.NegativeBias",
        "+callbacks.kill.value=-50",
    )
    events = diagnostics["dead_units"]["events"]  # type: ignore[index]
    assert [e["kind"] for e in events] == ["dead_units"]
    assert events[0]["layers"] == {"net.body.0.layers.1": 1.0, "net.body.1.layers.1": 1.0}
    assert "leaky_relu" in events[0]["message"]
    logged = pd.read_csv(out / "csv" / "metrics.csv").dropna(
        subset=["dead_units/net.body.0.layers.1"]
    )
    # each training epoch (not the validation of the best checkpoint after fit)
    assert (
        logged["epoch"].tolist() == [0, 1]
        and (logged["dead_units/net.body.1.layers.1"] == 1.0).all()
    )


def test_a_run_that_never_learns_is_named_so(
    make_cfg: MakeCfg, caplog: pytest.LogCaptureFixture
) -> None:
    """A learning rate of zero: steps run, the weights never change, the loss never moves."""
    with caplog.at_level("WARNING"):
        diagnostics, summary, _ = run(
            make_cfg,
            "trainer.max_epochs=5",
            "net.dropout=0",
            "callbacks.early_stopping=null",
            "+callbacks.freeze._target_=tests.helpers.BlowUpLearningRate",
            "+callbacks.freeze.epoch=0",
            "+callbacks.freeze.lr=0.0",
        )
    assert kinds(diagnostics, "learning") == ["no_update", "loss_stalled"]
    events = diagnostics["learning"]["events"]  # type: ignore[index]
    assert events[0]["epoch"] == 0 and "changed no parameter" in events[0]["message"]
    assert events[1]["epoch"] == 3  # the first epoch the loss test applies (patience 3)
    assert caplog.text.count("NOT LEARNING") == 2
    assert summary["metrics"]["test/acc"] < 0.3  # type: ignore[index]


class Doubled(InMemoryDataModule):
    """Wine with every row twice: duplicates land in different splits."""

    def load(self) -> Loaded:
        from sklearn.datasets import load_wine

        bunch = load_wine()
        x = np.concatenate([bunch.data, bunch.data[:60]]).astype(np.float32)
        y = np.concatenate([bunch.target, bunch.target[:60]])
        return Loaded(
            x=x, y=y, task="classification", modality="tabular", class_names=["a", "b", "c"]
        )


def test_leakage_counts_are_exact() -> None:
    dm = Doubled()
    dm.setup()
    xs = {s: dm.tensors(s)[0].numpy() for s in ("train", "val", "test")}

    def shared(a: np.ndarray, b: np.ndarray) -> int:  # rows of b equal to some row of a
        return int((b[:, None, :] == a[None, :, :]).all(-1).any(1).sum())

    expected = {
        "train/val": shared(xs["train"], xs["val"]),
        "train/test": shared(xs["train"], xs["test"]),
        "val/test": shared(xs["val"], xs["test"]),
    }
    assert dm.leakage_counts == expected and sum(expected.values()) > 10
    with pytest.raises(
        ConfigError, match=r"data leakage: exact duplicate inputs across splits \d+ train/val"
    ):
        Doubled(leakage="error").setup()
    quiet = Doubled(leakage="ignore")
    quiet.setup()
    assert quiet.leakage_counts == {}


def test_count_shared_samples_on_a_small_table() -> None:
    a, b, c = (
        np.array([[1, 2], [3, 4]]),
        np.array([[3, 4], [3, 4], [5, 6]]),
        np.array([[5, 6], [1, 2]]),
    )
    assert count_shared_samples({"train": a, "val": b, "test": c}) == {
        "train/val": 2,
        "train/test": 1,
        "val/test": 1,
    }


def test_lr_range_test_sets_the_suggested_rate(make_cfg: MakeCfg) -> None:
    diagnostics, _, out = run(make_cfg, "tune_lr=true", "trainer.max_epochs=1")
    suggestion = diagnostics["lr_find"]
    assert isinstance(suggestion, float) and suggestion > 0
    assert (out / "lr_find.png").is_file()
    curves = pd.read_csv(out / "csv" / "metrics.csv")
    assert curves["lr-Adam"].dropna().iloc[0] == pytest.approx(suggestion)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: GradientHealth(every_n_steps=0), "every_n_steps must be >= 1"),
        (lambda: GradientHealth(vanishing_ratio=2), r"vanishing_ratio must be in \(0, 1\)"),
        (lambda: DeadUnits(threshold=0), r"threshold must be in \(0, 1\]"),
        (lambda: DivergenceGuard(factor=1), "factor must be > 1"),
        (lambda: LearningCheck(patience=0), "learning_check.patience must be an int >= 1"),
        (lambda: LearningCheck(min_change=1.0), r"learning_check.min_change must be in \[0, 1\)"),
        (lambda: Doubled(leakage="maybe"), "data.leakage 'maybe' is unknown"),
    ],
)
def test_bad_diagnostic_settings(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_detector_rules() -> None:
    assert vanishing_layers({"a": 1e-6, "b": 1e-2, "c": 1.0}, 1e-3) == ["a"]
    assert vanishing_layers({"a": 0.5, "c": 1.0}, 1e-3) == []
    assert exploding(float("nan"), [], 1e3, 50) is not None
    assert exploding(2e3, [], 1e3, 50) is not None
    assert (
        exploding(60.0, [1.0] * 5, 1e3, 50) is not None
        and exploding(40.0, [1.0] * 5, 1e3, 50) is None
    )
    assert divergence(float("inf"), None, 1.0, 10) is not None
    assert divergence(1.0, 0.05, 0.6, 10) is not None and divergence(1.0, 0.1, 0.6, 10) is None
    # a loss that fell near zero and spiked: 12x its minimum, but far below its first value
    assert divergence(0.02, 0.0005, 0.006, 10, start=1.0) is None
    assert divergence(5.0, 0.0005, 3.0, 10, start=1.0) is not None
    assert loss_stalled(2.30, 2.29, 0.01) and not loss_stalled(2.30, 2.0, 0.01)
