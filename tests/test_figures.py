"""A run's pictures: drawn by a single run, left to later in the jobs of a sweep, and drawn
later from the numbers the run saved, exactly as the run would have drawn them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from tests.conftest import ROOT
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


KILLED = """
import sys
from tests.helpers import KillAtWrite
from trainlab import figures
KillAtWrite(int(sys.argv[1]), sys.argv[2], sys.argv[3])
raise SystemExit(figures.main([sys.argv[4]]))
"""


def _draw(run: Path, at: int, log: Path, when: str = "before") -> int:
    command = [sys.executable, "-c", KILLED, str(at), str(log), when, str(run)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(command, env=env, capture_output=True, check=False).returncode


@pytest.mark.slow
def test_drawing_killed_at_any_write_leaves_whole_pictures_and_no_scratch(
    make_cfg: MakeCfg, tmp_path: Path
) -> None:
    """SIGKILL before or after each step that makes a picture durable in the run: each picture
    is there whole or not at all, nothing else is left in the run, and drawing again completes
    it."""
    cfg = make_cfg(*DRAWN)
    fit(cfg)
    run = Path(cfg.paths.output_dir)
    drawn = {name: (run / name).read_bytes() for name in PICTURES}
    for name in PICTURES:
        (run / name).unlink()
    before = {p.name for p in run.iterdir()}
    log = tmp_path / "steps.log"
    assert _draw(run, -1, log) == 0
    steps = [line.split(" ", 2) for line in log.read_text().splitlines()]
    in_run = [int(n) for n, _, target in steps if Path(target).parent == run or target == str(run)]
    assert len(in_run) == 3 * len(PICTURES)  # each picture synced, renamed in, its folder synced
    for i, at in enumerate(in_run):
        for name in PICTURES:
            (run / name).unlink(missing_ok=True)
        when = ("before", "after")[i % 2]
        assert _draw(run, at, tmp_path / "kill.log", when) == -9, f"no kill {when} {at}"
        left = {p.name for p in run.iterdir()} - before
        assert {n for n in left if not n.startswith(".")} <= set(PICTURES), left
        assert all((run / n).read_bytes() == drawn[n] for n in left & set(PICTURES))
    assert _draw(run, -1, tmp_path / "again.log") == 0
    assert {name: (run / name).read_bytes() for name in PICTURES} == drawn


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
