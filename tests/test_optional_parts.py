"""Baselines, calibration, the diagnostics and W&B run marking are parts, not branches of the
pipeline: a run (and a fork) can leave each out, down to deleting its modules."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import ROOT, run_cli

# The modules of the optional parts; the run below trains with none of them importable.
OPTIONAL = (
    "trainlab.callbacks.baselines",
    "trainlab.experiments.baselines",
    "trainlab.callbacks.run_status",
    "trainlab.loggers.wandb",
    "trainlab.callbacks.calibration",
    "trainlab.calibration",
    "trainlab.callbacks.gradients",
    "trainlab.callbacks.dead_units",
    "trainlab.callbacks.divergence",
    "trainlab.callbacks.gap",
    "trainlab.callbacks.curves",
    "trainlab.callbacks.learning",
    "trainlab.experiments.report",
    "trainlab.report",
)
# Their config entries, as a fork that deleted them would leave callbacks/default.yaml.
ENTRIES = (
    "baselines",
    "wandb_status",
    "calibration",
    "gradient_health",
    "dead_units",
    "divergence_guard",
    "gap",
    "learning_curves",
    "learning_check",
)

DELETED = f"""
import atexit, runpy, sys
from importlib.abc import MetaPathFinder

class Deleted(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == m or name.startswith(m + ".") for m in {OPTIONAL!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}} (deleted)", name=name)
        return None

def still_deleted():  # once the run has ended: the modules were unimportable all along
    try:
        import trainlab.callbacks.baselines
    except ModuleNotFoundError as err:
        print("still deleted:", err.name)

sys.meta_path.insert(0, Deleted())
atexit.register(still_deleted)
runpy.run_module("trainlab.train", run_name="__main__", alter_sys=True)
"""


def test_a_run_trains_with_every_optional_part_deleted(tmp_path: Path) -> None:
    (tmp_path / "without_parts.py").write_text(DELETED)
    env = {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])
    }
    quick = ("trainer.max_epochs=3", "callbacks.progress_bar=null", f"hydra.run.dir={tmp_path}/run")
    left_out = [f"callbacks.{name}=null" for name in ENTRIES]
    result = run_cli("without_parts", *quick, *left_out, cwd=tmp_path, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    run = tmp_path / "run"
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["metrics"]["test/acc"] > 0.9  # it learns
    assert "baselines" not in summary
    assert not [k for k in summary["metrics"] if k.startswith(("baseline/", "test/ece"))]
    assert not (run / "calibration.json").exists()
    assert not (run / "learning_curves.png").exists()
    assert "still deleted: trainlab.callbacks.baselines" in output
