"""Replaying a search's curves through a pruner: decisions checked by hand on written runs, bad
pruner names and settings refused by name. (That a replay matches a real pruned search trial for
trial is in tests/test_optuna.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from trainlab.experiments.replay import load_search, make_pruner, replay
from trainlab.replay import main as replay_main
from trainlab.runtime.configs import CONFIG_DIR

MEDIAN = "median:n_startup_trials=1:n_warmup_steps=0"


def write_trial(
    sweep: Path, number: int, curve: list[float], stop: str = "completed", every: int = 1
) -> None:
    """A trial's run directory as a sweep job leaves it: config, summary and per-epoch CSV (a
    validation every ``every`` epochs: ``curve`` holds its values)."""
    run = sweep / str(number)
    (run / "csv").mkdir(parents=True)
    config = {
        "optimized_metric": "val/acc",
        "model": {"monitor": "val/acc", "mode": "max"},
        "trainer": {"max_epochs": 4},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    epochs = len(curve) * every
    summary = {"metrics": {"val/acc": max(curve)}, "epochs": epochs, "stop_reason": stop}
    (run / "metrics.json").write_text(json.dumps(summary))
    rows = ["epoch,step,train/loss,val/acc"]
    for epoch in range(epochs):
        rows.append(f"{epoch},{epoch},0.5,")
        if (epoch + 1) % every == 0:
            rows.append(f"{epoch},{epoch},,{curve[epoch // every]}")
    rows.append(f"{epochs},{epochs},,{max(curve)}")  # the validation after fit: no epoch of its own
    (run / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    write_trial(tmp_path, 0, [0.5, 0.6, 0.7, 0.8])
    write_trial(tmp_path, 1, [0.3, 0.4, 0.5, 0.6])  # below trial 0 from its first epoch
    write_trial(tmp_path, 2, [0.6, 0.7, 0.8, 0.9])
    return tmp_path


def test_a_median_pruner_replayed_stops_what_falls_below_the_finished_trials(sweep: Path) -> None:
    search = load_search(sweep)
    assert (search.metric, search.mode, search.max_epochs) == ("val/acc", "max", 4)
    assert search.trials[1].curve == {0: 0.3, 1: 0.4, 2: 0.5, 3: 0.6}  # the after-fit row: out
    assert [t.epochs for t in search.trials] == [4, 4, 4]
    unpruned = replay(search, make_pruner("none", CONFIG_DIR, 4))
    assert (unpruned.epochs, unpruned.stopped, unpruned.best) == (12, {}, 0.9)
    # trial 0 starts the median (0.5 at epoch 0); trial 1's 0.3 is below it: stopped after 1
    # epoch; trial 2 is above the median of trial 0 at every epoch
    pruned = replay(search, make_pruner(MEDIAN, CONFIG_DIR, 4))
    assert (pruned.epochs, pruned.stopped, pruned.best) == (9, {1: 1}, 0.9)
    # run the best first, and the other two fall below it at their first epoch
    reversed_order = replay(search, make_pruner(MEDIAN, CONFIG_DIR, 4), [2, 1, 0])
    assert (reversed_order.epochs, reversed_order.stopped) == (6, {1: 1, 0: 1})


def test_a_search_that_validated_every_other_epoch_is_replayed_at_those_epochs(
    tmp_path: Path,
) -> None:
    write_trial(tmp_path, 0, [0.6, 0.8], every=2)  # validated after epochs 1 and 3
    write_trial(tmp_path, 1, [0.4, 0.5], every=2)
    search = load_search(tmp_path)
    assert [(t.curve, t.epochs) for t in search.trials][1] == ({1: 0.4, 3: 0.5}, 4)
    # trial 1 is below the median at its first validation (step 1): it trained 2 epochs
    pruned = replay(search, make_pruner(MEDIAN, CONFIG_DIR, 4))
    assert (pruned.epochs, pruned.stopped) == (6, {1: 2})


def test_the_command_prints_what_each_pruner_spends_and_keeps(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert replay_main([str(sweep), "--pruners", "none", MEDIAN, "--orders", "3"]) == 0
    out = capsys.readouterr().out
    assert "3 trials of at most 4 epochs, val/acc (max)" in out
    row = next(line for line in out.splitlines() if line.startswith(f"| {MEDIAN} "))
    # pruned trials, epochs, share, best, vs none, then the orders' share and mean ± SD
    assert row.split(" | ")[1:6] == ["1/3", "9", "75%", "0.9000", "+0.0000"]


def test_a_trial_the_search_pruned_counts_as_unknown_and_failed_runs_are_left_out(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_trial(sweep, 3, [0.2, 0.25], stop="pruned at epoch 1 by MedianPruner: val/acc 0.25")
    (sweep / "4").mkdir()
    (sweep / "4" / "failure.json").write_text(json.dumps({"error": "RuntimeError"}))
    search = load_search(sweep)
    assert [t.number for t in search.trials] == [0, 1, 2, 3]
    assert search.skipped == ["4: RuntimeError: None"]
    unpruned = replay(search, make_pruner("none", CONFIG_DIR, 4))
    assert (unpruned.epochs, unpruned.stopped, unpruned.unknown) == (14, {3: 2}, 1)
    assert replay_main([str(sweep), "--pruners", "none", "--orders", "1"]) == 0
    assert "epochs are a lower bound" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("pruners", "named"),
    [
        (["patience"], "pruner 'patience': no such config; valid: ['hyperband', 'median'"),
        (["median:n_warmup=2"], "'n_warmup=2' is no key=value of MedianPruner; valid keys: "),
        (["median:n_warmup_steps"], "'n_warmup_steps' is no key=value of MedianPruner"),
    ],
)
def test_a_bad_pruner_is_refused_by_name(
    sweep: Path, pruners: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert replay_main([str(sweep), "--pruners", *pruners]) == 2
    assert named in capsys.readouterr().err


def test_a_pruner_config_may_only_name_an_optuna_pruner(tmp_path: Path) -> None:
    group = tmp_path / "hydra" / "sweeper" / "pruner"
    group.mkdir(parents=True)
    (group / "payload.yaml").write_text("_target_: os.system\ncommand: touch owned\n")
    with pytest.raises(ValueError, match=r"_target_ os\.system is no optuna\.pruners class"):
        make_pruner("payload", tmp_path, 4)
    (group / "reads.yaml").write_text("_target_: optuna.pruners.MedianPruner\nn: ${model.n}\n")
    with pytest.raises(ValueError, match=r"pruner 'reads' .*reads\.yaml.*model"):
        make_pruner("reads", tmp_path, 4)
    assert not (Path.cwd() / "owned").exists()


def test_a_directory_without_curves_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "failure.json").write_text(json.dumps({"error": "OSError"}))
    with pytest.raises(ValueError, match="no trial with a per-epoch val/loss to replay"):
        load_search(tmp_path)
