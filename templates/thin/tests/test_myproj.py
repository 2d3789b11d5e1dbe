"""myproj's parts through trainlab's contract tests (trainlab.testing): each must meet its
contract on a real batch, and the whole must learn."""

from __future__ import annotations

from pathlib import Path

import pytest
from trainlab.errors import ConfigError
from trainlab.testing import check_learns, check_parts, compose

from myproj import CONF

QUICK = ["callbacks.progress_bar=null", "trainer.accelerator=cpu", "logger=csv"]


def test_the_parts_meet_their_contracts(tmp_path: Path) -> None:
    dm, model = check_parts(compose(CONF, "myproj", QUICK, tmp_path))
    assert dm.num_outputs == 3 and type(model).__name__ == "FocalClassifier"


def test_it_learns_what_a_line_cannot(tmp_path: Path) -> None:
    metrics = check_learns(compose(CONF, "myproj", [*QUICK, "trainer.max_epochs=40"], tmp_path))
    assert metrics["test/acc"] >= metrics["baseline/logistic/test/acc"] + 0.2


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fourier_scale"):
        check_parts(compose(CONF, "myproj", [*QUICK, "+net.fourier_scale=2"], tmp_path))
