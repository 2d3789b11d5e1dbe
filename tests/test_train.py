"""The training pipeline in-process: experiments, reproducibility, eval and predict, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import DictConfig

from tests.conftest import compose_cfg
from tests.test_configs import options
from trainlab.callbacks.checkpoint import host_copy
from trainlab.errors import ConfigError
from trainlab.models.task import Task
from trainlab.runtime.build import check_output_shape
from trainlab.runtime.evaluation import evaluate, predict
from trainlab.runtime.training import fit

MakeCfg = Callable[..., DictConfig]
QUICK = [
    "trainer.max_epochs=2",
    "callbacks.progress_bar=null",
    "trainer.accelerator=cpu",
    "+trainer.enable_model_summary=false",
]


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_passes_fast_dev_run(name: str, make_cfg: MakeCfg) -> None:
    metrics = fit(make_cfg(f"experiment={name}", "debug=fast_dev_run", *QUICK))
    assert metrics and all(np.isfinite(v) for v in metrics.values())
    assert {"val/loss", "test/loss"} <= set(metrics)


def test_run_directory_contents(make_cfg: MakeCfg) -> None:
    cfg = make_cfg(*QUICK)
    metrics = fit(cfg)
    run = Path(cfg.paths.output_dir)
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "csv", "metrics.json", "checkpoints", "classes.json"} <= names
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["metrics"] == pytest.approx(metrics)
    assert {"test/acc", "test/f1", "val/acc", "val/loss"} <= set(metrics)
    assert summary["best_checkpoint"].endswith("best.ckpt") and summary["epochs"] == 2
    curves = pd.read_csv(run / "csv" / "metrics.csv")
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "epoch"} <= set(curves.columns)


def test_same_seed_same_metrics_and_seed_zero_is_a_seed(tmp_path: Path) -> None:
    def run(seed: int, sub: str) -> dict[str, float]:
        return fit(compose_cfg("train", [f"seed={seed}", *QUICK], tmp_path / sub))

    first, again, other = run(0, "a"), run(0, "b"), run(1, "c")
    assert first == again
    assert first != other


def test_train_eval_predict_round_trip(make_cfg: MakeCfg, tmp_path: Path) -> None:
    train_cfg = make_cfg(*QUICK)
    metrics = fit(train_cfg)
    run_dir = train_cfg.paths.output_dir
    eval_cfg = compose_cfg("eval", [f"run_dir={run_dir}"], tmp_path / "eval")
    assert evaluate(eval_cfg)["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    ckpt = Path(run_dir) / "checkpoints" / "best.ckpt"
    by_ckpt = compose_cfg("eval", [f"ckpt_path={ckpt}", "split=val"], tmp_path / "eval2")
    assert evaluate(by_ckpt)["val/acc"] == pytest.approx(metrics["val/acc"], abs=1e-6)

    pred_cfg = compose_cfg("predict", [f"run_dir={run_dir}"], tmp_path / "pred")
    table = pd.read_csv(predict(pred_cfg))
    probs = table.filter(like="prob_").to_numpy()
    assert probs.shape == (360, 10) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (table["pred"] == table["target"]).mean() == pytest.approx(metrics["test/acc"], abs=1e-6)
    with pytest.raises(ConfigError, match="exists; choose another path"):
        predict(pred_cfg)


def test_predict_on_a_csv_file_by_column_name(
    make_cfg: MakeCfg, iris_csv: Path, tmp_path: Path
) -> None:
    cfg = make_cfg("data=csv", f"data.path={iris_csv}", "data.target=species", "net=linear", *QUICK)
    fit(cfg)
    assert json.loads((Path(cfg.paths.output_dir) / "classes.json").read_text()) == [
        "setosa",
        "versicolor",
        "virginica",
    ]
    frame = pd.read_csv(iris_csv)
    shuffled = frame[list(reversed(frame.columns))].head(7)  # column order must not matter
    shuffled.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "p.csv"
    pred_cfg = compose_cfg(
        "predict",
        [f"run_dir={cfg.paths.output_dir}", f"input_csv={tmp_path / 'new.csv'}", f"output={out}"],
        tmp_path / "pred",
    )
    table = pd.read_csv(predict(pred_cfg))
    assert len(table) == 7 and set(table["pred"]) <= {"setosa", "versicolor", "virginica"}
    assert list(table["target"]) == list(frame["species"].head(7))
    frame.drop(columns=["petal_width"]).to_csv(tmp_path / "bad.csv", index=False)
    bad = compose_cfg(
        "predict",
        [f"run_dir={cfg.paths.output_dir}", f"input_csv={tmp_path / 'bad.csv'}"],
        tmp_path / "pred2",
    )
    with pytest.raises(ConfigError, match=r"lacks feature columns \['petal_width'\]"):
        predict(bad)
    gaps = frame.head(3).copy()
    gaps.loc[1, "sepal_width"] = None
    gaps.to_csv(tmp_path / "gaps.csv", index=False)
    holes = compose_cfg(
        "predict",
        [f"run_dir={cfg.paths.output_dir}", f"input_csv={tmp_path / 'gaps.csv'}"],
        tmp_path / "pred3",
    )
    with pytest.raises(
        ConfigError, match=r"gaps.csv: missing values in columns \{'sepal_width': 1\}"
    ):
        predict(holes)


def test_regression_metrics_are_in_target_units(make_cfg: MakeCfg) -> None:
    metrics = fit(make_cfg("experiment=diabetes_regression", *QUICK))
    assert {"test/mae", "test/r2", "test/loss"} <= set(metrics)
    assert 20 < metrics["test/mae"] < 200  # disease progression units, not standardised ones


BAD_INPUTS = [
    (
        ["net=cnn", "data=iris"],
        r"cannot read tabular data .* nets that fit this data: net=linear, net=mlp$",
    ),
    (["net=rnn"], r"cannot read image data .*net=cnn, net=linear, net=mlp"),
    (["net.dropout=1.5"], r"net: dropout must be a number in \[0, 1\), got 1.5"),
    (["net.hidden_sizes=[64,0]"], "net: hidden_sizes must be positive integers"),
    (["model.optimizer.lr=0"], r"model.optimizer.lr must be a number > 0, got 0"),
    (["model.optimizer.lr=-1e-3"], r"model.optimizer.lr must be a number > 0"),
    (["model.optimizer.lr=fast"], r"model.optimizer.lr must be a number > 0, got 'fast'"),
    (["data.batch_size=abc"], "data.batch_size must be a positive integer, got 'abc'"),
    (["seed=-3"], "seed must be a non-negative integer"),
    (
        ["+net.hiden_sizes=[3]"],
        r"net: unknown key\(s\) \['hiden_sizes'\] for trainlab.nets.MLP; valid keys",
    ),
    (["+model.optimizer.betta=0.9"], r"model.optimizer: unknown key\(s\) \['betta'\]"),
    (
        ["model=regression"],
        "model=regression needs regression data, but data is a classification task",
    ),
    (
        ["data=csv", "data.path=nowhere.csv", "data.target=y"],
        "data.path: file 'nowhere.csv' does not exist",
    ),
    (
        ["model.monitor=val/accuracy"],
        "model.monitor 'val/accuracy' is not a metric this task logs; "
        "use one of val/loss, val/acc, val/f1",
    ),
    (
        ["+trainer.check_val_every_n_epoch=x"],
        "trainer.check_val_every_n_epoch must be an integer or null",
    ),
    (["data.split_seed=abc"], "data.split_seed must be a non-negative integer, got 'abc'"),
    (["data=csv"], r"data.path, data.target must be set \(\?\?\? in the config\)"),
    (["model.mode=maximum"], "model.mode 'maximum' is unknown"),
    (["model/scheduler=cosine", "model.scheduler.warmup_fraction=2"], "warmup_fraction must be in"),
    (["steps_per_call=0"], "steps_per_call must be 'auto' or an integer >= 1, got 0"),
    (
        ["callbacks.model_checkpoint.last_every_seconds=-1"],
        "callbacks.model_checkpoint.last_every_seconds must be a number >= 0, got -1",
    ),
    (
        ["callbacks.model_checkpoint.best_every_seconds=soon"],
        "callbacks.model_checkpoint.best_every_seconds must be a number >= 0, got 'soon'",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "message"),
    BAD_INPUTS,
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_bad_input_fails_before_training(
    overrides: list[str], message: str, make_cfg: MakeCfg
) -> None:
    cfg = make_cfg(*overrides, *QUICK)
    with pytest.raises(ConfigError, match=message):
        fit(cfg)
    if "scheduler" not in " ".join(overrides):  # schedulers are built by the Trainer at fit start
        assert not list(Path(cfg.paths.output_dir).iterdir()), "a rejected run wrote files"


def test_labels_that_do_not_fit_the_head() -> None:
    with pytest.raises(
        ConfigError, match=r"outputs shape \(3,\) per sample but the data needs \(5,\)"
    ):
        check_output_shape(torch.nn.Linear(4, 3), (4,), 5)


def test_labels_out_of_range_in_a_users_datamodule() -> None:
    from trainlab.data import InMemoryDataModule, Loaded

    class Broken(InMemoryDataModule):
        def load(self) -> Loaded:
            x = np.zeros((20, 3), np.float32)
            return Loaded(
                x=x,
                y=np.arange(20) % 4,
                task="classification",
                modality="tabular",
                class_names=["a", "b", "c"],
            )

    with pytest.raises(ConfigError, match=r"labels must be integers in \[0, 3\) for 3 classes"):
        Broken().setup()


def test_locating_runs_reports_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="give run_dir="):
        evaluate(compose_cfg("eval", [], tmp_path))
    with pytest.raises(ConfigError, match=r"holds no config\.yaml"):
        evaluate(compose_cfg("eval", [f"run_dir={tmp_path}"], tmp_path))


def test_lean_and_default_paths_give_the_same_metrics(tmp_path: Path) -> None:
    common = ["trainer.max_epochs=3", "trainer.accelerator=cpu", "seed=7"]
    default = fit(
        compose_cfg(
            "train",
            [*common, "callbacks.progress_bar=null", "callbacks.model_checkpoint.monitor=null"],
            tmp_path / "default",
        )
    )
    lean = fit(compose_cfg("train", [*common, "debug=lean"], tmp_path / "lean"))
    for key in ("val/loss", "val/acc", "test/loss", "test/acc", "test/f1"):
        assert lean[key] == pytest.approx(default[key], abs=1e-6), key


def test_fit_epoch_metrics_skip_self_log_and_land_where_it_puts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    common = [
        "trainer.max_epochs=3",
        "trainer.accelerator=cpu",
        "callbacks.progress_bar.refresh_seconds=0",
        "callbacks.calibration=null",
        "model/scheduler=plateau",  # reads the monitor from callback_metrics
        "callbacks.early_stopping.patience=1",
        "seed=5",
    ]
    runs = {}
    for direct in (True, False):
        monkeypatch.setattr(Task, "direct_epoch_logging", direct)
        cfg = compose_cfg("train", common, tmp_path / str(direct))
        fit(cfg)
        run = Path(cfg.paths.output_dir)
        csv = pd.read_csv(run / "csv" / "metrics.csv")
        lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch ")]
        runs[direct] = {
            "summary": json.loads((run / "metrics.json").read_text()),
            "best": torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["epoch"],
            "csv": csv,
            "progress": [ln.split("s  ", 1)[1] for ln in lines],  # without the epoch's time
        }
    direct, logged = runs[True], runs[False]
    assert direct["progress"] == logged["progress"]
    assert len(direct["progress"]) == 3
    assert direct["best"] == logged["best"]
    assert direct["summary"]["metrics"] == logged["summary"]["metrics"]
    assert direct["summary"]["epochs"] == logged["summary"]["epochs"]
    columns = [c for c in logged["csv"] if c.startswith(("train/", "val/", "gap/"))]
    assert {"train/loss", "val/acc", "gap/loss"} <= set(columns)
    for column in columns:  # the same values at the same steps
        pick = [column, "step", "epoch"]
        expected = logged["csv"][pick].dropna().reset_index(drop=True)
        pd.testing.assert_frame_equal(direct["csv"][pick].dropna().reset_index(drop=True), expected)


def test_epoch_progress_prints_each_epochs_own_metrics(
    make_cfg: MakeCfg, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = make_cfg(
        "trainer.max_epochs=2",
        "trainer.accelerator=cpu",
        "callbacks.progress_bar.refresh_seconds=0",
    )
    fit(cfg)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    curves = (
        pd.read_csv(Path(cfg.paths.output_dir) / "csv" / "metrics.csv").groupby("epoch").first()
    )
    for epoch, line in enumerate(lines):
        assert f"train/loss {curves.loc[epoch, 'train/loss']:.4g}" in line
        assert f"val/acc {curves.loc[epoch, 'val/acc']:.4g}" in line


@pytest.mark.parametrize(
    "settings",
    [
        ["steps_per_call=1"],
        ["steps_per_call=1", "model/scheduler=cosine", "trainer.gradient_clip_val=0.1"],
        ["steps_per_call=3", "model/scheduler=cosine", "trainer.gradient_clip_val=0.1"],
        ["model.mode=max"],  # the best checkpoint stays at epoch 0; last.ckpt must not
    ],
    ids=["plain", "plain+cosine+clip", "grouped+cosine+clip", "stalled-monitor"],
)
def test_resuming_from_last_checkpoint_is_exact(tmp_path: Path, settings: list[str]) -> None:
    common = [
        "trainer.accelerator=cpu",
        "callbacks.progress_bar=null",
        "callbacks.early_stopping=null",
        "callbacks.calibration=null",
        "seed=3",
        *settings,
    ]

    def last_weights(sub: str) -> dict[str, torch.Tensor]:
        ckpt = torch.load(tmp_path / sub / "run" / "checkpoints" / "last.ckpt", weights_only=True)
        return ckpt["state_dict"]

    fit(compose_cfg("train", [*common, "trainer.max_epochs=4"], tmp_path / "straight"))
    interrupt = [
        "+callbacks.interrupt._target_=tests.helpers.Interrupt",
        "+callbacks.interrupt.epochs=2",
    ]
    fit(compose_cfg("train", [*common, "trainer.max_epochs=4", *interrupt], tmp_path / "first"))
    first_last = tmp_path / "first" / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(first_last, weights_only=True)["global_step"] == 40  # 2 epochs of 20 steps
    fit(
        compose_cfg(
            "train",
            [*common, "trainer.max_epochs=4", f"ckpt_path={first_last}"],
            tmp_path / "resumed",
        )
    )
    straight, resumed = last_weights("straight"), last_weights("resumed")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    curves = json.loads((tmp_path / "resumed" / "run" / "metrics.json").read_text())
    assert curves["epochs"] == 4


def test_a_null_seed_is_drawn_and_recorded(make_cfg: MakeCfg) -> None:
    cfg = make_cfg("seed=null", "debug=fast_dev_run", *QUICK)
    fit(cfg)
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["seed"]
    assert isinstance(saved, int)
    assert f"seed: {saved}" in (Path(cfg.paths.output_dir) / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("mode", "best_epoch"),
    [("min", 2), ("max", 0)],  # max on val/loss: only the first epoch counts as the best
)
def test_last_checkpoint_links_to_best_only_when_both_hold_the_same_step(
    tmp_path: Path, mode: str, best_epoch: int
) -> None:
    cfg = compose_cfg(
        "train",
        [
            "trainer.accelerator=cpu",
            "trainer.max_epochs=3",
            "callbacks.progress_bar=null",
            "callbacks.calibration=null",
            f"model.mode={mode}",
            "seed=1",
        ],
        tmp_path,
    )
    fit(cfg)
    ckpts = Path(cfg.paths.output_dir) / "checkpoints"
    last, best = ckpts / "last.ckpt", ckpts / "best.ckpt"
    assert torch.load(best, weights_only=True)["epoch"] == best_epoch
    assert torch.load(last, weights_only=True)["global_step"] == 60  # always the latest state
    assert last.is_symlink() == (best_epoch == 2)
    if last.is_symlink():
        assert last.resolve() == best.resolve()


@pytest.mark.parametrize(
    ("last_every", "best_every", "held"),
    [
        # last.ckpt every epoch; writing it puts the best (held in memory) on disk first
        (0, 60, {"last": [None, 0, 1], "best": [None, 0, 0]}),
        # nothing is due within the run: both are written when training ends
        (3600, 60, {"last": [None, None, None], "best": [None, None, None]}),
        # the best written at once, and last.ckpt linked to it at that step
        (3600, 0, {"last": [None, 0, 0], "best": [None, 0, 0]}),
    ],
)
def test_checkpoints_are_written_at_most_every_so_many_seconds(
    tmp_path: Path, last_every: int, best_every: int, held: dict[str, list[int | None]]
) -> None:
    record = tmp_path / "held.json"
    cfg = compose_cfg(
        "train",
        [
            *QUICK,
            "trainer.max_epochs=3",
            "callbacks.calibration=null",
            "model.mode=max",  # the best checkpoint stays at epoch 0
            f"callbacks.model_checkpoint.last_every_seconds={last_every}",
            f"callbacks.model_checkpoint.best_every_seconds={best_every}",
            "+callbacks.record._target_=tests.helpers.RecordCheckpoints",
            f"+callbacks.record.path={record}",
        ],
        tmp_path,
    )
    fit(cfg)
    # the epoch each file holds at the start of epochs 0, 1, 2
    assert json.loads(record.read_text()) == held
    ckpts = Path(cfg.paths.output_dir) / "checkpoints"
    # when training ends, last.ckpt holds the final state and best.ckpt the best one
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 60
    assert torch.load(ckpts / "best.ckpt", weights_only=True)["epoch"] == 0


def test_a_best_checkpoint_held_in_memory_is_the_one_written_at_once(tmp_path: Path) -> None:
    common = [
        *QUICK,
        "trainer.max_epochs=5",
        "callbacks.calibration=null",
        "model.monitor=val/acc",
        "model.mode=max",
        "seed=2",
    ]
    bests = []
    for every in (0, 3600):  # at once; held, beaten twice, written when training ends
        out = tmp_path / str(every)
        fit(
            compose_cfg(
                "train", [*common, f"callbacks.model_checkpoint.best_every_seconds={every}"], out
            )
        )
        bests.append(torch.load(out / "run" / "checkpoints" / "best.ckpt", weights_only=True))
    at_once, held = bests
    # val/acc rose in epochs 0, 1 and 2 (the held copy was beaten twice), then not again
    assert held["epoch"] == at_once["epoch"] == 2
    for key, value in at_once["state_dict"].items():
        assert torch.equal(held["state_dict"][key], value), key
    for state, other in zip(
        at_once["optimizer_states"][0]["state"].values(),
        held["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        assert all(torch.equal(state[k], other[k]) for k in state)


def test_a_best_checkpoint_held_in_memory_is_written_when_training_fails(tmp_path: Path) -> None:
    cfg = compose_cfg(
        "train",
        [
            *QUICK,
            "trainer.max_epochs=3",
            "callbacks.calibration=null",
            "callbacks.model_checkpoint.best_every_seconds=3600",
            "+callbacks.fail._target_=tests.helpers.FailAt",
            "+callbacks.fail.epoch=1",
        ],
        tmp_path,
    )
    with pytest.raises(RuntimeError, match="planned failure"):
        fit(cfg)
    best = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"
    assert torch.load(best, weights_only=True)["epoch"] == 0


def test_any_checkpoint_written_puts_the_best_it_records_on_disk(tmp_path: Path) -> None:
    record = tmp_path / "best_epoch.json"
    cfg = compose_cfg(
        "train",
        [
            *QUICK,
            "trainer.max_epochs=2",
            "callbacks.calibration=null",
            "callbacks.model_checkpoint.best_every_seconds=3600",
            "callbacks.model_checkpoint.last_every_seconds=3600",
            "+callbacks.save._target_=tests.helpers.SaveCheckpointAt",
            "+callbacks.save.epoch=1",
            f"+callbacks.save.path={record}",
        ],
        tmp_path,
    )
    fit(cfg)
    manual = torch.load(
        Path(cfg.paths.output_dir) / "checkpoints" / "manual.ckpt", weights_only=False
    )
    recorded = next(v for k, v in manual["callbacks"].items() if k.startswith("Checkpoint"))
    assert Path(recorded["best_model_path"]).name == "best.ckpt"
    assert json.loads(record.read_text()) == 0  # on disk, holding the epoch it records


def test_host_copy_keeps_a_checkpoint_as_it_was() -> None:
    net = torch.nn.Linear(3, 2)
    checkpoint = {"state_dict": net.state_dict(), "best": {"a": 1.0}, "steps": [torch.ones(2)]}
    copied = host_copy(checkpoint)
    with torch.no_grad():
        net.weight.add_(1.0)
    checkpoint["best"]["a"] = 2.0
    checkpoint["steps"][0].add_(1.0)
    assert not torch.equal(copied["state_dict"]["weight"], net.weight)
    assert copied["best"] == {"a": 1.0}
    assert torch.equal(copied["steps"][0], torch.ones(2))
    # load_state_dict reads the version metadata that state_dict() attaches
    assert copied["state_dict"]._metadata == checkpoint["state_dict"]._metadata
    torch.nn.Linear(3, 2).load_state_dict(copied["state_dict"])
    # a later copy into the earlier one reuses its tensors where the shapes match
    checkpoint["steps"] = [torch.zeros(3)]
    again = host_copy(checkpoint, into=copied)
    assert again["state_dict"]["weight"].data_ptr() == copied["state_dict"]["weight"].data_ptr()
    assert torch.equal(again["state_dict"]["weight"], net.weight)
    assert torch.equal(again["steps"][0], torch.zeros(3))  # another shape: a new tensor
