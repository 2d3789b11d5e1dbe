"""Selective prediction: the risk-coverage curve and its area, a threshold chosen on validation
for a target risk, and ``predict abstain=<risk>`` on a trained run."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import DictConfig

from tests.conftest import compose_cfg
from tests.test_train import QUICK
from trainlab.calibration.selective import choose_threshold, risk_coverage
from trainlab.errors import ConfigError
from trainlab.runtime.evaluation import predict
from trainlab.runtime.training import fit

MakeCfg = Callable[..., DictConfig]


def test_risk_coverage_and_aurc_match_a_hand_computation() -> None:
    # confidences 0.9, 0.8, 0.7, 0.6; right, wrong, right, wrong
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    labels = torch.tensor([0, 0, 0, 0])
    found = risk_coverage(probs, labels)
    # risks when answering the top 1..4: 0, 1/2, 1/3, 2/4
    assert found["aurc"] == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    assert found["aurc_optimal"] == pytest.approx((0 + 0 + 1 / 3 + 2 / 4) / 4)  # errors last
    assert found["risk_at_full_coverage"] == 0.5
    assert found["risk_by_coverage"]["0.50"] == pytest.approx(0.5)
    assert found["risk_by_coverage"]["1.00"] == pytest.approx(0.5)


def test_a_threshold_meets_the_target_risk_on_validation_with_the_most_coverage() -> None:
    confidence = torch.tensor([0.9, 0.8, 0.7, 0.6])
    hits = torch.tensor([True, False, True, False])
    chosen = choose_threshold(confidence, hits, 0.34)  # top 3: risk 1/3
    assert (chosen.threshold, chosen.val_coverage) == (pytest.approx(0.7), 0.75)
    assert choose_threshold(confidence, hits, 0.0).threshold == pytest.approx(0.9)
    # tied confidences cannot be cut apart: nothing meets 0 risk, so every sample abstains
    tied = choose_threshold(torch.tensor([0.9, 0.9, 0.5]), torch.tensor([True, False, True]), 0.0)
    assert math.isinf(tied.threshold) and tied.val_coverage == 0.0
    with pytest.raises(ValueError, match=r"target risk must be in \[0, 1\]"):
        choose_threshold(confidence, hits, 1.5)


def test_a_run_reports_aurc_and_predict_abstains_to_meet_a_risk(
    make_cfg: MakeCfg, tmp_path: Path
) -> None:
    cfg = make_cfg(*QUICK)
    metrics = fit(cfg)
    run_dir = Path(cfg.paths.output_dir)
    selective = json.loads((run_dir / "calibration.json").read_text())["selective"]
    assert selective["aurc_optimal"] <= selective["aurc"] <= selective["risk_at_full_coverage"]
    assert metrics["test/aurc"] == selective["aurc"]
    assert (run_dir / "risk_coverage.png").is_file()

    out = compose_cfg("predict", [f"run_dir={run_dir}", "abstain=0.01"], tmp_path / "p")
    path = predict(out)
    table = pd.read_csv(path, dtype={"target": str, "pred": str})
    summary = json.loads(path.with_suffix(".abstain.json").read_text())
    answered = ~table["abstain"]
    assert 0 < answered.mean() < 1 and summary["coverage"] == pytest.approx(answered.mean())
    right = table["target"] == table["pred"]
    assert summary["risk"] == pytest.approx(1 - right[answered].mean())
    assert summary["risk"] < 1 - right.mean()  # abstaining took out more errors than answers
    assert (table.loc[answered, "confidence"] >= summary["threshold"]).all()
    assert (table.loc[~answered, "confidence"] < summary["threshold"]).all()

    # its summary file is checked first: nothing is written when it exists
    taken = tmp_path / "taken.csv"
    taken.with_suffix(".abstain.json").write_text("{}")
    again = compose_cfg(
        "predict", [f"run_dir={run_dir}", "abstain=0.01", f"output={taken}"], tmp_path / "r"
    )
    with pytest.raises(ConfigError, match=r"taken.abstain.json exists"):
        predict(again)
    assert not taken.exists()

    bad = compose_cfg("predict", [f"run_dir={run_dir}", "abstain=2"], tmp_path / "q")
    with pytest.raises(ConfigError, match=r"abstain must be a target risk in \[0, 1\], got 2"):
        predict(bad)
