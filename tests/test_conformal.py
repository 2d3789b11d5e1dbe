"""Conformal prediction sets: coverage near 1 - alpha, adaptive sizes, and a run that reports
them and predicts them per row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import DictConfig

from tests.conftest import compose_cfg
from tests.test_train import QUICK
from trainlab.calibration.conformal import ConformalSets, coverage_and_size
from trainlab.errors import ConfigError
from trainlab.runtime.evaluation import predict
from trainlab.runtime.training import fit

MakeCfg = Callable[..., DictConfig]


def _calibrated(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and labels drawn from them: a perfectly calibrated model."""
    g = torch.Generator().manual_seed(seed)
    probs = (torch.randn(n, 10, generator=g) * 2).softmax(1)
    return probs, torch.multinomial(probs, 1, generator=g)[:, 0]


@pytest.mark.parametrize("method", ["aps", "lac"])
def test_sets_cover_the_class_one_minus_alpha_of_the_time(method: str) -> None:
    cal_p, cal_y = _calibrated(3000, 0)
    test_p, test_y = _calibrated(20000, 1)
    for alpha in (0.05, 0.1, 0.2):
        sets = ConformalSets.fit(cal_p, cal_y, alpha, method)
        found = coverage_and_size(sets.predict(test_p), test_y)
        # at least 1 - alpha (up to sampling); a little above where a set would be empty
        assert -0.01 < found["coverage"] - (1 - alpha) < 0.025, (alpha, found)
    assert sets.predict(test_p).sum(1).min() >= 1  # never empty


def test_adaptive_sets_grow_where_the_model_is_unsure() -> None:
    cal_p, cal_y = _calibrated(3000, 0)
    sets = ConformalSets.fit(cal_p, cal_y, 0.1, "aps")
    sure = torch.full((1, 10), 0.01).index_fill_(1, torch.tensor([3]), 0.91)
    unsure = torch.full((1, 10), 0.1)
    assert sets.predict(sure).sum() == 1 and sets.predict(unsure).sum() >= 8
    assert ConformalSets.from_state(sets.state()) == sets
    # The threshold is the ceil((n + 1)(1 - alpha))-th smallest score: by hand for lac.
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 0, 1])  # lac scores 1 - p: 0.1, 0.4, 0.7, 0.2
    assert ConformalSets.fit(probs, labels, 0.25, "lac").threshold == pytest.approx(0.7)
    with pytest.raises(ConfigError, match=r"alpha must be a number in \(0, 1\), got 1.5"):
        ConformalSets.fit(probs, labels, 1.5)


def test_a_run_reports_coverage_and_predict_writes_each_rows_set(
    make_cfg: MakeCfg, tmp_path: Path
) -> None:
    alpha = 0.05
    cfg = make_cfg(f"callbacks.calibration.conformal_alpha={alpha}", *QUICK)
    metrics = fit(cfg)
    # 180 calibration and 360 test samples: within 0.04 of the target.
    assert abs(metrics["test/conformal_coverage"] - (1 - alpha)) <= 0.04
    assert 1.0 <= metrics["test/conformal_set_size"] < 3.0
    run_dir = cfg.paths.output_dir
    out = compose_cfg("predict", [f"run_dir={run_dir}", "sets=true"], tmp_path / "p")
    table = pd.read_csv(predict(out), dtype={"target": str, "pred": str, "set": str})
    held = [t in s.split("|") for t, s in zip(table["target"], table["set"], strict=True)]
    assert sum(held) / len(held) == pytest.approx(metrics["test/conformal_coverage"])
    assert (table["set_size"] == table["set"].str.count(r"\|") + 1).all()
