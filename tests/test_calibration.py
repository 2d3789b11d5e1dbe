"""Calibration: metrics against an independent computation, calibrators on constructed logits,
and the callback's reports, checkpoint and use in eval and predict."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import DictConfig

from tests.conftest import compose_cfg
from trainlab.calibration import (
    PlattScaler,
    TemperatureScaler,
    VectorScaler,
    calibration_report,
    load_calibrator,
    make_calibrator,
)
from trainlab.callbacks import Calibration
from trainlab.errors import ConfigError
from trainlab.runtime.evaluation import evaluate, predict
from trainlab.runtime.restore import restore
from trainlab.runtime.training import fit

MakeCfg = Callable[..., DictConfig]
QUICK = ["trainer.max_epochs=3", "callbacks.progress_bar=null", "trainer.accelerator=cpu"]
QUICK += ["callbacks.learning_curves=null"]


def calibrated_logits(n: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose softmax is calibrated by construction: labels are drawn from it."""
    gen = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(n, k, generator=gen)
    labels = torch.multinomial(logits.softmax(1), 1, generator=gen).squeeze(1)
    return logits, labels


def reference_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    """ECE written out by hand: bins (i/M, (i+1)/M], confidence = max probability."""
    conf, pred = probs.max(1), probs.argmax(1)
    total = 0.0
    for i in range(n_bins):
        lo, hi = i / n_bins, (i + 1) / n_bins
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            total += mask.mean() * abs((pred[mask] == labels[mask]).mean() - conf[mask].mean())
    return float(total)


@pytest.mark.parametrize("n_bins", [5, 15])
def test_ece_matches_an_independent_computation(n_bins: int) -> None:
    logits, labels = calibrated_logits(500, 4, seed=3)
    logits = logits * 2.5  # overconfident, so the bins disagree
    report = calibration_report(logits, labels, n_bins=n_bins)
    probs = logits.double().softmax(1).numpy()
    assert report["ece"] == pytest.approx(reference_ece(probs, labels.numpy(), n_bins), abs=1e-6)
    assert sum(b["count"] for b in report["bins"]) == 500 and len(report["bins"]) == n_bins
    onehot = np.eye(4)[labels.numpy()]
    assert report["brier"] == pytest.approx(((probs - onehot) ** 2).sum(1).mean(), abs=1e-9)
    assert report["nll"] == pytest.approx(
        -np.log(probs[np.arange(500), labels.numpy()]).mean(), abs=1e-9
    )
    assert report["mce"] >= report["ece"]


@pytest.mark.parametrize("factor", [0.5, 3.0])
def test_temperature_recovers_the_factor_and_lowers_ece(factor: float) -> None:
    logits, labels = calibrated_logits(4000, 10)
    distorted = logits * factor
    scaler = TemperatureScaler(10).fit(distorted, labels)
    assert scaler.temperature == pytest.approx(factor, rel=0.1)
    before = calibration_report(distorted, labels)
    after = calibration_report(scaler(distorted).detach(), labels)
    assert after["ece"] < 0.5 * before["ece"] and after["nll"] < before["nll"]


@pytest.mark.parametrize("factor", [0.3, 1.0, 4.0])
def test_temperature_scaling_keeps_every_prediction(factor: float) -> None:
    logits, labels = calibrated_logits(1000, 5, seed=1)
    scaler = TemperatureScaler(5).fit(logits * factor, labels)
    assert torch.equal(scaler(logits * factor).argmax(1), (logits * factor).argmax(1))


def test_binary_tasks_use_platt_scaling() -> None:
    assert isinstance(make_calibrator("auto", 2), PlattScaler)
    assert isinstance(make_calibrator("auto", 3), TemperatureScaler)
    logits, labels = calibrated_logits(3000, 2, seed=2)
    shifted = logits * 3 + torch.tensor([0.0, 1.5])  # overconfident and biased towards class 1
    platt = PlattScaler(2).fit(shifted, labels)
    assert (
        calibration_report(platt(shifted).detach(), labels)["ece"]
        < 0.5 * calibration_report(shifted, labels)["ece"]
    )
    assert platt.parameters_dict()["a"] == pytest.approx(1 / 3, rel=0.15)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Calibration(n_bins=0), "n_bins must be an integer >= 1, got 0"),
        (lambda: Calibration(method="isotonic"), "method 'isotonic' is unknown"),
        (
            lambda: make_calibrator("platt", 10),
            "Platt scaling is for binary tasks; this one has 10",
        ),
        (
            lambda: calibration_report(torch.zeros(3, 2), torch.zeros(3), n_bins=-1),
            "n_bins must be",
        ),
    ],
)
def test_bad_calibration_settings(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_calibration_skips_a_regression_run_with_a_note(
    make_cfg: MakeCfg, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_cfg("experiment=diabetes_regression", *QUICK)
    assert cfg.callbacks.calibration is not None  # the default callbacks, unchanged
    with caplog.at_level("INFO"):
        metrics = fit(cfg)
    assert "test/r2" in metrics and not any("ece" in k for k in metrics)
    assert "calibration skipped" in caplog.text
    run = Path(cfg.paths.output_dir)
    assert not (run / "calibration.json").exists()
    diagnostics = json.loads((run / "diagnostics.json").read_text())
    assert "regression run" in diagnostics["calibration_skipped"]


def test_run_reports_saves_and_applies_the_calibrator(make_cfg: MakeCfg, tmp_path: Path) -> None:
    cfg = make_cfg(*QUICK)
    metrics = fit(cfg)
    run = Path(cfg.paths.output_dir)
    report = json.loads((run / "calibration.json").read_text())
    assert report["method"] == "temperature" and report["fit_on"] == "val"
    assert (run / "reliability.png").stat().st_size > 10_000
    assert metrics["test/ece"] == pytest.approx(report["before"]["ece"])
    assert metrics["test/ece_calibrated"] == pytest.approx(report["after"]["ece"])
    assert metrics["test/acc_calibrated"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    summary = json.loads((run / "metrics.json").read_text())["metrics"]
    assert {"test/ece", "test/ece_calibrated", "test/nll_calibrated"} <= set(summary)

    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    calibrator = load_calibrator(checkpoint)
    assert isinstance(calibrator, TemperatureScaler)
    assert calibrator.temperature == pytest.approx(report["parameters"]["temperature"])
    # only the tested (best) checkpoint holds it
    last = run / "checkpoints" / "last.ckpt"
    assert load_calibrator(torch.load(last, weights_only=True)) is None

    evaluated = evaluate(compose_cfg("eval", [f"run_dir={run}"], tmp_path / "eval"))
    assert evaluated["test/ece"] == pytest.approx(report["before"]["ece"], abs=1e-6)
    assert evaluated["test/ece_calibrated"] == pytest.approx(report["after"]["ece"], abs=1e-6)

    restored = restore(str(run), None)
    x, _ = restored.datamodule.tensors("test")
    with torch.no_grad():
        logits = restored.model(x)
    for flag, expected in (
        ("true", (logits / calibrator.temperature).softmax(1)),
        ("false", logits.softmax(1)),
    ):
        out = tmp_path / f"pred_{flag}.csv"
        predict(
            compose_cfg(
                "predict",
                [f"run_dir={run}", f"output={out}", f"calibrated={flag}"],
                tmp_path / flag,
            )
        )
        probs = pd.read_csv(out).filter(like="prob_").to_numpy()
        assert np.allclose(probs, expected.numpy(), atol=1e-5)


def test_vector_and_platt_runs(tmp_path: Path) -> None:
    def run(name: str, *overrides: str) -> dict[str, float]:
        return fit(compose_cfg("train", [*overrides, *QUICK], tmp_path / name))

    vector = run("vector", "callbacks.calibration.method=vector")
    assert vector["test/nll_calibrated"] > 0
    platt = run("platt", "experiment=breast_cancer_mlp", "callbacks.calibration.method=platt")
    report = json.loads((tmp_path / "platt" / "run" / "calibration.json").read_text())
    assert report["method"] == "platt" and set(report["parameters"]) == {"a", "b"}
    assert {"test/ece", "test/ece_calibrated"} <= set(platt)
    with pytest.raises(ConfigError, match="Platt scaling is for binary tasks"):
        run("platt10", "callbacks.calibration.method=platt")


def test_vector_scaler_shapes() -> None:
    scaler = VectorScaler(3)
    assert scaler(torch.randn(4, 3)).shape == (4, 3)


def test_a_checkpoint_that_does_not_fit_its_run_is_named(make_cfg: MakeCfg, tmp_path: Path) -> None:
    """eval and predict read the weights, the calibrator and the saved validation confidences
    of a checkpoint; one whose entries do not fit the run (edited, or from another run) is
    refused naming the file, not with a traceback, and predict writes nothing."""
    cfg = make_cfg(*QUICK)
    fit(cfg)
    best = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"
    state = torch.load(best, weights_only=True)
    selective = state["trainlab_selective"]
    weights = dict(state["state_dict"])
    weights.pop(next(iter(weights)))
    calibrator = {k: v for k, v in state["trainlab_calibrator"].items() if k != "method"}
    tampered = {
        "2-D confidences": ("trainlab_selective", {**selective, "confidence": torch.ones(3, 2)}),
        "confidences above 1": (
            "trainlab_selective",
            {**selective, "confidence": selective["confidence"] + 2},
        ),
        "a calibrator without its method": ("trainlab_calibrator", calibrator),
        "weights missing a tensor": ("state_dict", weights),
    }
    for i, (what, (key, value)) in enumerate(tampered.items()):
        path = best.with_name(f"tampered{i}.ckpt")
        torch.save({**state, key: value}, path)
        out = tmp_path / f"pred{i}.csv"
        with pytest.raises(ConfigError, match=rf"ckpt_path: {path} does not fit the run"):
            predict(compose_cfg("predict", [f"ckpt_path={path}", f"output={out}"], tmp_path))
        assert not out.exists(), what
