"""The defaults converge: a bundled sequence experiment ends on its plateau within its budget,
near what it reaches with more training, not at an early stop on a plateau it would leave."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import compose_cfg
from trainlab.runtime.training import fit

# Each bundled experiment over sequence data that runs to its end within about a minute here;
# the adding problem's (their loss waits at the mean predictor's for many epochs, and their
# experiments wait 40 epochs) take 3 to 5 minutes each and are left out.
SEQUENCE_EXPERIMENTS = ["signals_tcn", "signals_mlp", "seq_digits_lstm", "tones_lstm"]
MORE = 20  # epochs of further training, without early stopping
TOLERANCE = 0.02  # test accuracy that further training may add to a converged run


@pytest.mark.slow
@pytest.mark.parametrize("experiment", SEQUENCE_EXPERIMENTS)
def test_a_sequence_experiment_ends_on_its_plateau_near_its_converged_accuracy(
    experiment: str, tmp_path: Path
) -> None:
    quiet = ["callbacks.progress_bar=null", "trainer.accelerator=cpu", "seed=1"]
    first = compose_cfg("train", [f"experiment={experiment}", *quiet], tmp_path / "first")
    metrics = fit(first)
    run = Path(first.paths.output_dir)
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["plateau"] is True, summary["stop_reason"]  # early stopping, not the budget
    epochs = int(summary["epochs"])
    assert epochs < int(first.trainer.max_epochs)

    # Train on from the last state, MORE epochs past the stop, with no early stopping.
    more = [f"trainer.max_epochs={epochs + MORE}", "callbacks.early_stopping=null"]
    more.append(f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}")
    longer = fit(compose_cfg("train", [f"experiment={experiment}", *quiet, *more], tmp_path / "on"))
    assert longer["test/acc"] - metrics["test/acc"] <= TOLERANCE, (metrics, longer)
