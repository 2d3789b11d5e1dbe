"""trainlab.testing, the contract tests a project runs on its own parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainlab.runtime.configs import CONFIG_DIR
from trainlab.testing import check_learns, compose

QUICK = ["trainer.max_epochs=3", "callbacks=none", "trainer.accelerator=cpu"]


def test_check_learns_adds_the_baselines_a_project_left_out(tmp_path: Path) -> None:
    metrics = check_learns(compose(CONFIG_DIR, "train", QUICK, tmp_path), margin=0.5)
    assert metrics["test/acc"] >= metrics["baseline/majority/test/acc"] + 0.5


def test_check_learns_fails_a_net_that_does_not_learn(tmp_path: Path) -> None:
    frozen = compose(CONFIG_DIR, "train", [*QUICK, "model.optimizer.lr=1e-9"], tmp_path)
    with pytest.raises(AssertionError, match="does not beat the majority baseline's"):
        check_learns(frozen, margin=0.5)  # the same margin the trained net clears
