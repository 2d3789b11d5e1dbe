"""Nothing lost to a kill: a resumed run killed with SIGKILL at many instants, each before or
after a step that makes a write durable (of last.ckpt, best.ckpt, metrics.csv, metrics.json
and the rest), resumes with resume=auto and ends as a run never interrupted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import ROOT, run_cli
from tests.helpers import last_weights, learning_curve

COMMON = [
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
    "callbacks.early_stopping=null",
    "callbacks.calibration=null",
    "callbacks.last_checkpoint.every_seconds=0",
    "baselines=false",
    "trainer.max_epochs=3",
    "seed=3",
    "resume=auto",
]
KILL = "+callbacks.kill._target_=tests.helpers.KillAtWrite"
ENV = {"PYTHONPATH": str(ROOT)}


def _train(run: Path, *extra: str, cwd: Path) -> int:
    done = run_cli("trainlab.train", *COMMON, f"hydra.run.dir={run}", *extra, cwd=cwd, env=ENV)
    if done.returncode not in (0, -9):
        raise AssertionError(done.stderr[-3000:])
    return done.returncode


def _kill_points(log: Path) -> list[tuple[int, str]]:
    """Every fourth step the log lists, alternately before and after it, and both sides of each
    step that swaps a checkpoint in."""
    steps = [line.split(" ", 2) for line in log.read_text().splitlines()]
    points = {(int(n), "before" if i % 2 else "after") for i, (n, _, _) in enumerate(steps[::4])}
    for n, call, target in steps:
        if call in ("replace", "link") and ".ckpt" in target:
            points |= {(int(n), "before"), (int(n), "after")}
    return sorted(points)


@pytest.mark.slow
def test_a_resumed_run_killed_at_any_write_resumes_to_the_uninterrupted_result(
    tmp_path: Path,
) -> None:
    straight = tmp_path / "straight"
    assert _train(straight, cwd=tmp_path) == 0
    expected_weights, expected_curve = last_weights(straight), learning_curve(straight)
    assert expected_curve["epoch"].tolist() == [0, 0, 1, 1, 2, 2, 3]  # 3 epochs, a final val

    # A run preempted in epoch 1 (its last.ckpt is from the start of epoch 1)...
    base = tmp_path / "base"
    kill_at_epoch = ["+callbacks.stop._target_=tests.helpers.SignalAt"]
    kill_at_epoch += ["+callbacks.stop.epoch=1", "+callbacks.stop.batch=5"]
    assert _train(base, *kill_at_epoch, "+callbacks.stop.signal=SIGKILL", cwd=tmp_path) == -9
    # ... resumed once without a kill, to count the durable writes of a resumed run.
    counted = tmp_path / "counted"
    shutil.copytree(base, counted)
    log = tmp_path / "steps.log"
    assert (
        _train(counted, KILL, "+callbacks.kill.at=-1", f"+callbacks.kill.log={log}", cwd=tmp_path)
        == 0
    )

    points = _kill_points(log)
    assert len(points) >= 20
    for at, when in points:
        run = tmp_path / f"kill{at}{when}"
        shutil.copytree(base, run)
        kill = [KILL, f"+callbacks.kill.at={at}", f"+callbacks.kill.when={when}"]
        kill.append(f"+callbacks.kill.log={tmp_path / f'{run.name}.log'}")
        assert _train(run, *kill, cwd=tmp_path) == -9, f"no kill at step {at}"
        assert _train(run, cwd=tmp_path) == 0, f"killed {when} step {at}: not resumable"
        weights = last_weights(run)
        assert all(torch.equal(weights[k], expected_weights[k]) for k in expected_weights), (
            f"killed {when} step {at}: other weights"
        )
        pd.testing.assert_frame_equal(learning_curve(run), expected_curve, obj=f"curve, kill {at}")
        shutil.rmtree(run)
