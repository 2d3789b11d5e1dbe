"""Checkpoints: Lightning's ModelCheckpoint keeps best.ckpt, LatestCheckpoint last.ckpt; resuming
from last.ckpt gives the weights of a run never interrupted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import compose_cfg
from tests.helpers import learning_curve
from trainlab.errors import ConfigError
from trainlab.runtime.evaluation import evaluate
from trainlab.runtime.training import fit

COMMON = [
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
    "callbacks.early_stopping=null",
    "callbacks.calibration=null",
    "seed=3",
]


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param([], id="adam"),
        pytest.param(["model/scheduler=cosine", "trainer.gradient_clip_val=0.1"], id="cosine+clip"),
        pytest.param(
            ["model/scheduler=plateau", "model.scheduler.patience=0"],
            id="plateau",
            marks=pytest.mark.slow,  # the fast suite's time; CI runs it
        ),
        pytest.param(
            ["model.mode=max"],  # the best checkpoint stays at epoch 0; last.ckpt must not
            id="stalled-monitor",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_resuming_from_last_checkpoint_is_exact(tmp_path: Path, settings: list[str]) -> None:
    common = [*COMMON, "trainer.max_epochs=4", *settings]

    def last(sub: str) -> dict[str, torch.Tensor]:
        ckpt = torch.load(tmp_path / sub / "run" / "checkpoints" / "last.ckpt", weights_only=True)
        return ckpt["state_dict"]

    fit(compose_cfg("train", common, tmp_path / "straight"))
    interrupt = [
        "+callbacks.interrupt._target_=tests.helpers.Interrupt",
        "+callbacks.interrupt.epochs=2",
    ]
    fit(compose_cfg("train", [*common, *interrupt], tmp_path / "first"))
    first_last = tmp_path / "first" / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(first_last, weights_only=True)["global_step"] == 40  # 2 epochs of 20 steps
    fit(compose_cfg("train", [*common, f"ckpt_path={first_last}"], tmp_path / "resumed"))
    straight, resumed = last("straight"), last("resumed")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert not all(torch.equal(straight[k], last("first")[k]) for k in straight)  # it trained on
    assert json.loads((tmp_path / "resumed" / "run" / "metrics.json").read_text())["epochs"] == 4


@pytest.mark.parametrize(
    ("mode", "best_epoch"),
    [("min", 2), ("max", 0)],  # max on val/loss: only the first epoch counts as the best
)
def test_best_holds_the_best_epoch_and_last_the_latest_state(
    tmp_path: Path, mode: str, best_epoch: int
) -> None:
    cfg = compose_cfg("train", [*COMMON, "trainer.max_epochs=3", f"model.mode={mode}"], tmp_path)
    fit(cfg)
    ckpts = Path(cfg.paths.output_dir) / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "last.ckpt"]
    best = torch.load(ckpts / "best.ckpt", weights_only=True)
    last = torch.load(ckpts / "last.ckpt", weights_only=True)
    assert best["epoch"] == best_epoch
    assert last["global_step"] == 60  # always the latest state
    assert "optimizer_states" in last and "optimizer_states" not in best  # best: weights only
    summary = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert summary["best_checkpoint"] == str(ckpts / "best.ckpt")


def test_checkpoints_hold_the_random_state_for_dropout(tmp_path: Path) -> None:
    cfg = compose_cfg("train", [*COMMON, "trainer.max_epochs=1"], tmp_path)
    fit(cfg)
    last = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["rng_states"]["torch"].dtype == torch.uint8


@pytest.mark.parametrize(
    ("every", "held"),
    [
        # last.ckpt of every epoch's end, swapped in as the next starts (after this record)
        (0, {"last": [None, None, 0], "best": [None, 0, 0]}),
        (3600, {"last": [None, None, None], "best": [None, 0, 0]}),  # only when training ends
    ],
)
def test_last_checkpoint_is_written_at_most_every_so_many_seconds(
    tmp_path: Path, every: int, held: dict[str, list[int | None]]
) -> None:
    record = tmp_path / "held.json"
    cfg = compose_cfg(
        "train",
        [
            *COMMON,
            "trainer.max_epochs=3",
            "model.mode=max",  # the best checkpoint stays at epoch 0
            f"callbacks.last_checkpoint.every_seconds={every}",
            "+callbacks.record._target_=tests.helpers.RecordCheckpoints",
            f"+callbacks.record.path={record}",
        ],
        tmp_path,
    )
    fit(cfg)
    assert json.loads(record.read_text()) == held  # what each file holds at epochs 0, 1, 2
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 60  # and the end, always


def test_a_checkpoint_given_by_hand_is_checked_before_anything_is_built(tmp_path: Path) -> None:
    cfg = compose_cfg("train", [*COMMON, "trainer.max_epochs=1"], tmp_path / "done")
    fit(cfg)
    ckpts = Path(cfg.paths.output_dir) / "checkpoints"
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes((ckpts / "last.ckpt").read_bytes()[:2000])  # a copy that broke off
    cases = [
        (tmp_path / "missing.ckpt", "is not a file"),
        (cut, "is not a readable checkpoint (truncated"),
        (ckpts / "best.ckpt", "holds the weights alone (best.ckpt is written so)"),
    ]
    for i, (path, message) in enumerate(cases):
        resume = compose_cfg("train", [*COMMON, f"ckpt_path={path}"], tmp_path / str(i))
        with pytest.raises(ConfigError, match=rf"ckpt_path: .*{re.escape(message)}"):
            fit(resume)
        assert not list(Path(resume.paths.output_dir).iterdir()), "a rejected run wrote files"
    with pytest.raises(ConfigError, match="is not a readable checkpoint"):
        evaluate(compose_cfg("eval", [f"ckpt_path={cut}"], tmp_path / "eval"))


def test_a_tampered_running_metrics_entry_is_refused_not_set(tmp_path: Path) -> None:
    """The running train metrics come back from a checkpoint as the metric's own states only:
    an entry with another name (here ``update``, a method), a non-tensor state or a bad count
    is refused by name, and nothing of it is set on the metric."""
    cfg = compose_cfg("train", [*COMMON, "trainer.max_epochs=1"], tmp_path / "done")
    fit(cfg)
    state = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    entry = state["trainlab_running_train_metrics"]
    name = next(iter(entry))
    good = entry[name]
    tampered = [
        ({**good, "states": {**good["states"], "update": torch.zeros(1)}}, "states are not"),
        ({**good, "states": dict.fromkeys(good["states"], 1.0)}, "is a float, not a Tensor"),
        ({**good, "count": -3}, "update count is not an integer >= 0: -3"),
        ("states", "its states are not the metric's"),
    ]
    for i, (bad, message) in enumerate(tampered):
        path = tmp_path / f"tampered{i}.ckpt"
        torch.save({**state, "trainlab_running_train_metrics": {**entry, name: bad}}, path)
        resume = compose_cfg("train", [*COMMON, f"ckpt_path={path}"], tmp_path / str(i))
        with pytest.raises(ConfigError, match=rf"\[{name!r}\] entry does not fit.*{message}"):
            fit(resume)
        assert not list(Path(resume.paths.output_dir).iterdir()), "a rejected run wrote files"


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.mark.parametrize(
    ("stage", "batch", "step"),
    [
        pytest.param("train", 7, 20 + 8, id="mid-epoch"),
        pytest.param("train", 19, 40, id="last-batch", marks=pytest.mark.slow),
        pytest.param("validation", 0, 40, id="mid-validation"),
    ],
)
def test_sigterm_saves_a_state_that_resumes_exactly(
    tmp_path: Path, stage: str, batch: int, step: int
) -> None:
    """SLURM sends SIGTERM before a time limit or a preemption: the run writes last.ckpt where
    it stands, mid-epoch, and a run resumed from it ends as an uninterrupted one, with its
    learning curve. A signal during the epoch's validation (or at its last batch, just before)
    is held until the validation has ended: stopped mid-validation, the resumed run would skip
    that epoch's validation."""
    common = [*COMMON, "trainer.max_epochs=3"]
    fit(compose_cfg("train", common, tmp_path / "straight"))
    signal_at = ["+callbacks.term._target_=tests.helpers.SignalAt", "+callbacks.term.epoch=1"]
    signal_at += [f"+callbacks.term.stage={stage}", f"+callbacks.term.batch={batch}"]
    with pytest.raises(SystemExit):
        fit(compose_cfg("train", [*common, *signal_at], tmp_path / "job"))
    last = tmp_path / "job" / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == step
    fit(compose_cfg("train", [*common, f"ckpt_path={last}"], tmp_path / "job"))

    straight, resumed = _weights(tmp_path / "straight" / "run"), _weights(tmp_path / "job" / "run")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    # every epoch once; an interrupted epoch's train loss covers all its batches
    pd.testing.assert_frame_equal(
        learning_curve(tmp_path / "job" / "run"), learning_curve(tmp_path / "straight" / "run")
    )


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["TERM", "KILL"])
def test_a_killed_job_run_again_with_resume_auto_continues_its_directory(
    tmp_path: Path, signal_name: str
) -> None:
    """What a requeued SLURM job does: the same command in the same run directory. After
    SIGTERM it continues mid-epoch from the state saved on the signal; after SIGKILL from the
    last epoch-end checkpoint. Either way it ends as an uninterrupted run, in one directory,
    with the whole learning curve."""
    from tests.conftest import ROOT, run_cli

    common = [*COMMON, "trainer.max_epochs=3", "callbacks.last_checkpoint.every_seconds=0"]
    straight = tmp_path / "straight"
    done = run_cli("trainlab.train", *common, f"hydra.run.dir={straight}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]

    run = tmp_path / "job"
    job = [*common, "resume=auto", f"hydra.run.dir={run}", "logger=many"]  # csv, tb, wandb
    env = {"PYTHONPATH": str(ROOT), "WANDB_API_KEY": "", "NETRC": str(tmp_path / "none")}
    kill = ["+callbacks.kill._target_=tests.helpers.SignalAt", "+callbacks.kill.epoch=1"]
    kill.append(f"+callbacks.kill.signal=SIG{signal_name}")
    first = run_cli("trainlab.train", *job, *kill, "+callbacks.kill.batch=7", cwd=tmp_path, env=env)
    assert not (run / "metrics.json").exists()  # it did not finish
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert saved == (28 if signal_name == "TERM" else 20), first.stderr[-2000:]

    again = run_cli("trainlab.train", *job, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"run directory: {run}" in again.stdout
    ours, theirs = _weights(run), _weights(straight)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    curves = pd.read_csv(run / "csv" / "metrics.csv").dropna(subset=["train/loss"])
    assert curves["epoch"].tolist() == [0, 1, 2]  # the epochs before the kill are kept
    if signal_name == "TERM":  # one job, one W&B run: the requeued process logs under its id
        offline = sorted((run / "wandb").glob("offline-run-*"))
        wandb_id = (run / "wandb_id").read_text()
        assert len(offline) == 2 and all(f"-{wandb_id}" in p.name for p in offline)


@pytest.mark.slow
def test_resume_auto_names_a_truncated_checkpoint_instead_of_starting_over(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    run = tmp_path / "job"
    job = [*COMMON, "trainer.max_epochs=1", "resume=auto", f"hydra.run.dir={run}"]
    assert run_cli("trainlab.train", *job, cwd=tmp_path).returncode == 0
    latest = run / "checkpoints" / "last.ckpt"
    latest.write_bytes(latest.read_bytes()[:1000])  # killed mid-write
    again = run_cli("trainlab.train", *job, cwd=tmp_path)
    assert again.returncode == 2
    assert f"resume=auto: {latest} is not a readable checkpoint" in again.stderr
    assert "Nothing was overwritten" in again.stderr and (run / "metrics.json").is_file()

    # With an earlier state kept beside it, the run falls back to that one and says so.
    run = tmp_path / "job2"
    job = [*COMMON, "trainer.max_epochs=2", "resume=auto", f"hydra.run.dir={run}"]
    job.append("callbacks.last_checkpoint.every_seconds=0")
    assert run_cli("trainlab.train", *job, cwd=tmp_path).returncode == 0
    latest, previous = run / "checkpoints" / "last.ckpt", run / "checkpoints" / "last.previous.ckpt"
    assert torch.load(previous, weights_only=True)["global_step"] == 20
    latest.write_bytes(latest.read_bytes()[:1000])
    again = run_cli("trainlab.train", *job, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming from the one before it, {previous}" in again.stdout + again.stderr
    assert torch.load(latest, weights_only=True)["global_step"] == 40
