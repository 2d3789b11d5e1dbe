"""A run's pictures: drawn by a single run, left to later in the jobs of a sweep, and drawn
later from the numbers the run saved, exactly as the run would have drawn them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from tests.test_train import QUICK
from trainlab import figures
from trainlab.errors import ConfigError
from trainlab.runtime.configs import draw_figures
from trainlab.runtime.training import fit

MakeCfg = Callable[..., DictConfig]
PICTURES = ("learning_curves.png", "reliability.png", "risk_coverage.png")
DRAWN = [o for o in QUICK if not o.startswith("callbacks.learning_curves")]  # QUICK skips it


def test_pictures_drawn_later_are_the_ones_the_run_drew(make_cfg: MakeCfg) -> None:
    cfg = make_cfg(*DRAWN)
    fit(cfg)
    run = Path(cfg.paths.output_dir)
    drawn = {name: (run / name).read_bytes() for name in PICTURES}
    assert all(len(png) > 10_000 for png in drawn.values())
    for name in PICTURES:
        (run / name).unlink()

    assert figures.main([str(run)]) == 0
    assert {name: (run / name).read_bytes() for name in PICTURES} == drawn

    # A picture that is there is left as it is; only the missing one is drawn again.
    (run / "reliability.png").write_bytes(b"the user's own picture")
    (run / "risk_coverage.png").unlink()
    assert figures.main([str(run)]) == 0
    assert (run / "reliability.png").read_bytes() == b"the user's own picture"
    assert (run / "risk_coverage.png").read_bytes() == drawn["risk_coverage.png"]
    assert not [p for p in run.iterdir() if p.name.startswith("tmp")]  # no scratch left


def test_figures_false_draws_none_and_keeps_the_numbers(make_cfg: MakeCfg) -> None:
    cfg = make_cfg(*DRAWN, "figures=false")
    fit(cfg)
    run = Path(cfg.paths.output_dir)
    assert not [name for name in PICTURES if (run / name).exists()]
    assert (run / "learning_curves.json").is_file() and (run / "calibration.json").is_file()


@pytest.mark.parametrize("value", ["maybe", 1, 0, "yes", None])
def test_figures_takes_auto_true_or_false(value: object) -> None:
    with pytest.raises(ConfigError, match="figures must be auto, true or false"):
        draw_figures(value)
    assert draw_figures("auto") is True  # outside a sweep
    assert draw_figures(False) is False


def test_a_folder_without_saved_numbers_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert figures.main([str(tmp_path)]) == 2
    assert "holds no run's learning_curves.json" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
