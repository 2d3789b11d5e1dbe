"""Exact resume through DataLoader workers: a run stopped mid-epoch and resumed, with the same or
another number of workers, ends with the weights and the learning curve of a run never stopped,
for the image folder, the packed data and a forker's own plain ``DataLoader(shuffle=True)``.
(The in-memory loaders have no workers; tests/test_checkpoint.py resumes them.)"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import compose_cfg
from tests.helpers import learning_curve
from trainlab.data.resumable import ResumableLoader, ResumableSampler, convertible, resumable
from trainlab.runtime.training import fit

COMMON = [
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
    "callbacks.early_stopping=null",
    "callbacks.calibration=null",
    "callbacks.learning_curves=null",
    "baselines=false",
    "seed=3",
    "trainer.max_epochs=3",
    "model/scheduler=cosine",  # reads trainer.estimated_stepping_batches (Lightning #20550)
]


def _dataset(n: int = 50) -> TensorDataset:
    return TensorDataset(torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n))


def _loader(workers: int, **kwargs: Any) -> ResumableLoader:
    data = _dataset()
    sampler = ResumableSampler(data, shuffle=True, seed=7)
    return ResumableLoader(data, batch_size=8, sampler=sampler, num_workers=workers, **kwargs)


def _order(batches: Any) -> list[int]:
    return [int(i) for _, y in batches for i in y]


@pytest.mark.parametrize("workers", [0, 2])
def test_the_epoch_set_after_the_iterator_is_made_is_the_one_read(workers: int) -> None:
    """Lightning makes the training iterator before it sets a resumed run's epoch (#21938); a
    loader with workers that drew its indices then would read epoch 0's order."""
    loader = _loader(workers, persistent_workers=workers > 0)
    loader.sampler.set_epoch(2)
    expected = _order(loader)
    fresh = _loader(workers, persistent_workers=workers > 0)
    batches = iter(fresh)  # made at epoch 0, as Lightning does on resume ...
    fresh.sampler.set_epoch(2)  # ... and the epoch set after
    assert _order(batches) == expected
    loader.sampler.set_epoch(0)
    assert _order(loader) != expected  # epochs differ: the check above can fail


@pytest.mark.parametrize(("before", "after"), [(0, 0), (2, 2), (2, 0), (0, 2)])
def test_a_loader_resumed_mid_epoch_reads_the_rest_of_that_epoch(before: int, after: int) -> None:
    straight = _loader(before)
    straight.sampler.set_epoch(1)
    whole = _order(straight)
    first = _loader(before)
    first.sampler.set_epoch(1)
    batches = iter(first)
    seen = _order([next(batches) for _ in range(3)])
    state = first.state_dict()
    assert state == {"epoch": 1, "trained": 3}

    resumed = _loader(after)
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)
    assert seen + _order(resumed) == whole
    assert len(resumed) == len(straight)  # the epoch's length, for Lightning's count
    resumed.sampler.set_epoch(2)
    assert len(_order(resumed)) == 50  # the next epoch whole again


def test_an_images_augmentation_depends_on_the_seed_epoch_and_image_alone(
    digits_pngs: Path,
) -> None:
    """Not on the worker that reads it, nor on what was drawn before: a resumed run, with
    any number of workers, augments each image as the uninterrupted run did."""
    from trainlab.data import ImageFolderDataModule

    dm = ImageFolderDataModule(
        str(digits_pngs), augment={"rotate": 10, "translate": 0.1, "noise": 0.1}, num_workers=0
    )
    dm.setup()
    train = dm.datasets["train"]
    first = train[(3, 17)][0]
    torch.rand(5)  # draws in between change nothing
    assert torch.equal(train[(3, 17)][0], first)
    assert not torch.equal(train[(4, 17)][0], first)  # another epoch, another draw
    train.seed += 1
    assert not torch.equal(train[(3, 17)][0], first)  # another seed, another draw
    assert torch.equal(dm.datasets["val"][(3, 17)][0], dm.datasets["val"][(4, 17)][0])


def test_plain_loaders_are_rebuilt_alike_and_others_are_named() -> None:
    data = _dataset()
    plain = DataLoader(data, batch_size=8, shuffle=True, drop_last=True)
    rebuilt = resumable(plain, seed=5)
    assert isinstance(rebuilt, ResumableLoader) and rebuilt.drop_last
    assert len(rebuilt) == len(plain) == 6
    read = _order(rebuilt)
    assert len(set(read)) == len(read) == 48  # six whole batches, no sample twice
    in_order = resumable(DataLoader(data, batch_size=8), seed=5)
    assert _order(in_order) == list(range(50))
    sampled = DataLoader(data, batch_size=8, sampler=[3, 1, 2])
    assert resumable(sampled, seed=5) is sampled
    assert convertible(sampled) == "a sampler of its own (list)"
    drawn = DataLoader(data, batch_size=8, sampler=torch.utils.data.RandomSampler(data, True))
    assert "replacement" in str(convertible(drawn))


# -- whole runs ------------------------------------------------------------------------------
def _data(kind: str, folder: Path) -> list[str]:
    if kind == "image_folder":
        augment = "data.augment={rotate: 5, translate: 0.05, noise: 0.1}"
        return ["data=image_folder", f"data.root={folder}", augment, "net=cnn"]
    if kind == "packed":
        return ["data=packed", f"data.path={folder}", "net=cnn"]
    return []


@pytest.fixture
def folders(digits_pngs: Path, packed_digits: Path) -> dict[str, Path]:
    return {"image_folder": digits_pngs, "packed": packed_digits, "own": digits_pngs}


def _cfg(kind: str, workers: int, root: Path, folders: dict[str, Path], *extra: str) -> DictConfig:
    overrides = [*COMMON, *_data(kind, folders[kind]), *extra]
    cfg = compose_cfg("train", overrides, root)
    with open_dict(cfg):
        if kind == "own":  # a forker's DataModule: the Lightning docs' DataLoader(shuffle=True)
            cfg.data = OmegaConf.create({"_target_": "tests.forks.DigitsLoaders"})
        cfg.data.num_workers = workers
    return cfg


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def resume_matches_straight(
    kind: str, before: int, after: int, root: Path, folders: dict[str, Path]
) -> None:
    """Stop a run with SIGTERM at batch 7 of epoch 1, resume it with ``after`` workers, and
    compare it with a run never stopped."""
    fit(_cfg(kind, before, root / "straight", folders))
    signal = ["+callbacks.term._target_=tests.helpers.SignalAt", "+callbacks.term.epoch=1"]
    signal.append("+callbacks.term.batch=7")
    with pytest.raises(SystemExit):
        fit(_cfg(kind, before, root / "job", folders, *signal))
    last = root / "job" / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 20 + 8  # 20 batches an epoch
    fit(_cfg(kind, after, root / "job", folders, f"ckpt_path={last}"))

    straight, resumed = _weights(root / "straight" / "run"), _weights(root / "job" / "run")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    pd.testing.assert_frame_equal(
        learning_curve(root / "job" / "run"), learning_curve(root / "straight" / "run")
    )


@pytest.mark.parametrize(
    ("kind", "before", "after"),
    [("own", 0, 2)],  # a forker's plain DataLoader, rebuilt; the rest in the slow suite
)
def test_stopped_mid_epoch_and_resumed_with_other_workers_it_ends_as_never_stopped(
    kind: str, before: int, after: int, tmp_path: Path, folders: dict[str, Path]
) -> None:
    resume_matches_straight(kind, before, after, tmp_path, folders)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "before", "after"),
    [
        ("image_folder", 2, 0),
        ("packed", 0, 2),
        ("image_folder", 0, 0),
        ("image_folder", 2, 2),
        ("packed", 2, 2),
        ("packed", 2, 0),
        ("own", 2, 2),
        ("own", 2, 0),
    ],
)
def test_every_workers_pair_resumes_exactly(
    kind: str, before: int, after: int, tmp_path: Path, folders: dict[str, Path]
) -> None:
    resume_matches_straight(kind, before, after, tmp_path, folders)


def test_a_loader_that_cannot_resume_exactly_is_named_once_at_resume(
    tmp_path: Path, folders: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    first = _cfg("own", 0, tmp_path / "first", folders, "trainer.max_epochs=1")
    with open_dict(first):
        first.data._target_ = "tests.forks.FixedOrderDigits"
    fit(first)
    last = tmp_path / "first" / "run" / "checkpoints" / "last.ckpt"
    again = _cfg("own", 0, tmp_path / "again", folders, f"ckpt_path={last}")
    with open_dict(again):
        again.data._target_ = "tests.forks.FixedOrderDigits"
    with caplog.at_level(logging.WARNING):
        fit(again)
    named = [r.message for r in caplog.records if "saves no position" in r.message]
    assert len(named) == 1
    assert "FixedOrderDigits.train_dataloader() returns a sampler of its own" in named[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "signal_name"),
    [("image_folder", "KILL"), ("image_folder", "TERM"), ("packed", "KILL")],
)
def test_a_killed_job_with_workers_resumes_exactly_with_resume_auto(
    kind: str, signal_name: str, tmp_path: Path, folders: dict[str, Path]
) -> None:
    """A requeued job on the command line: killed mid-epoch with two workers reading, run
    again in its directory with resume=auto and no workers. After SIGKILL it resumes from
    the epoch-end checkpoint, where Lightning would replay epoch 0's order (#21938)."""
    from tests.conftest import ROOT, run_cli

    common = [
        *COMMON,
        *_data(kind, folders[kind]),
        "callbacks.last_checkpoint.every_seconds=0",
    ]
    straight = tmp_path / "straight"
    done = run_cli("trainlab.train", *common, f"hydra.run.dir={straight}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]

    run = tmp_path / "job"
    job = [*common, "resume=auto", f"hydra.run.dir={run}"]
    kill = ["+callbacks.kill._target_=tests.helpers.SignalAt", "+callbacks.kill.epoch=1"]
    kill += [f"+callbacks.kill.signal=SIG{signal_name}", "+callbacks.kill.batch=7"]
    env = {"PYTHONPATH": str(ROOT)}
    run_cli("trainlab.train", *job, *kill, "data.num_workers=2", cwd=tmp_path, env=env)
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert saved == (28 if signal_name == "TERM" else 20)
    again = run_cli("trainlab.train", *job, "data.num_workers=0", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    ours, theirs = _weights(run), _weights(straight)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    pd.testing.assert_frame_equal(learning_curve(run), learning_curve(straight))
