"""The training pipeline in-process: experiments, reproducibility, eval and predict, bad input."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import DictConfig

from tests.conftest import ROOT, compose_cfg
from tests.helpers import bundled_data, small_data
from tests.test_configs import options
from trainlab.errors import ConfigError
from trainlab.runtime.build import check_output_shape
from trainlab.runtime.evaluation import evaluate, predict
from trainlab.runtime.training import fit
from trainlab.trust.secrets import redact

MakeCfg = Callable[..., DictConfig]
QUICK = [
    "trainer.max_epochs=2",
    "callbacks.progress_bar=null",
    "trainer.accelerator=cpu",
    "+trainer.enable_model_summary=false",
    "callbacks.learning_curves=null",  # a third of a short run; test_diagnostics draws it
]


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_passes_fast_dev_run(name: str, make_cfg: MakeCfg) -> None:
    # The baselines' every path (bag-of-words, graphs) on a few samples: one batch is the point.
    few = "baseline_samples=256"
    metrics = fit(make_cfg(f"experiment={name}", "debug=fast_dev_run", few, *QUICK))
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
    assert summary["stop_reason"] == "completed trainer.max_epochs=2"
    assert summary["metrics"] == pytest.approx(metrics)
    assert {"test/acc", "test/f1", "val/acc", "val/loss"} <= set(metrics)
    assert summary["best_checkpoint"].endswith("best.ckpt") and summary["epochs"] == 2
    curves = pd.read_csv(run / "csv" / "metrics.csv")
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "epoch"} <= set(curves.columns)


def test_env_json_names_the_code_and_the_machine(make_cfg: MakeCfg) -> None:
    cfg = make_cfg("debug=fast_dev_run", *QUICK)
    fit(cfg)
    run = Path(cfg.paths.output_dir)
    env = json.loads((run / "env.json").read_text())

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    assert env["git"]["commit"] == git("rev-parse", "HEAD").strip()
    diff = git("diff", "HEAD")
    assert env["git"]["dirty"] == bool(diff)
    masked = redact(diff)  # secrets edited into tracked files are masked
    assert (run / "git.diff").read_text() == masked if diff else not (run / "git.diff").exists()
    assert env["packages"]["torch"] == torch.__version__
    assert env["packages"]["lightning"] == importlib.metadata.version("lightning")
    assert env["cuda"]["available"] == torch.cuda.is_available()
    threads = {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}
    assert env["threads"] == threads
    assert isinstance(env["hostname"], str) and env["python"].count(".") == 2


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
    (["data=karate"], r"MLP cannot read graph data .*fit this data: net=gat, net=gcn, net=gin$"),
    (["net.dropout=1.5"], r"net: dropout must be a number in \[0, 1\), got 1.5"),
    (["net.hidden_sizes=[64,0]"], "net: hidden_sizes must be positive integers"),
    (["model.optimizer.lr=0"], r"model.optimizer.lr must be a number > 0, got 0"),
    (["model.optimizer.lr=-1e-3"], r"model.optimizer.lr must be a number > 0"),
    (["model.optimizer.lr=fast"], r"model.optimizer.lr must be a number > 0, got 'fast'"),
    (["model/optimizer=sgd", "model.optimizer.momentum=-1"], "model.optimizer: Invalid momentum"),
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
        "model.monitor 'val/accuracy' is not a metric this model logs; "
        "use one of val/loss, val/acc, val/f1",
    ),
    (
        ["+trainer.check_val_every_n_epoch=x"],
        "trainer.check_val_every_n_epoch must be an integer >= 1 or null",
    ),
    (["data.split_seed=abc"], "data.split_seed must be a non-negative integer, got 'abc'"),
    (["data=csv"], r"data.path, data.target must be set \(\?\?\? in the config\)"),
    (["model.mode=maximum"], "model.mode 'maximum' is unknown"),
    (["model/scheduler=cosine", "model.scheduler.warmup_fraction=2"], "warmup_fraction must be in"),
    (
        ["+model.metrics={auc: MultiClassAUROC}"],
        r"model.metrics.auc: 'MultiClassAUROC' is not a torchmetrics metric",
    ),
    (
        [
            "+callbacks.twin._target_=lightning.pytorch.callbacks.ModelCheckpoint",
            "+callbacks.twin.monitor=val/loss",
        ],
        "callbacks: two ModelCheckpoint callbacks with the same monitor, mode and interval",
    ),
    (
        ["callbacks.last_checkpoint.every_seconds=soon"],
        "callbacks.last_checkpoint.every_seconds must be a number >= 0, got 'soon'",
    ),
    (
        ["callbacks.learning_check.patience=0"],
        "callbacks.learning_check.patience must be an int >= 1, got 0",
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
            [
                *common,
                "callbacks.progress_bar=null",
                "callbacks.model_checkpoint.monitor=null",  # test the final weights, as lean does
            ],
            tmp_path / "default",
        )
    )
    lean = fit(compose_cfg("train", [*common, "debug=lean"], tmp_path / "lean"))
    for key in ("val/loss", "val/acc", "test/loss", "test/acc", "test/f1"):
        assert lean[key] == pytest.approx(default[key], abs=1e-6), key


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


def test_stop_reason_and_plateau_say_whether_training_ended_on_its_plateau(
    make_cfg: MakeCfg, caplog: pytest.LogCaptureFixture
) -> None:
    # mode=max on val/loss: no epoch after the first improves, so patience 2 stops at epoch 2
    cfg = make_cfg(
        *QUICK, "trainer.max_epochs=10", "model.mode=max", "callbacks.early_stopping.patience=2"
    )
    fit(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert summary["stop_reason"].startswith("early stopping at epoch 2: ")
    assert "val/loss" in summary["stop_reason"] and summary["epochs"] == 3
    assert summary["plateau"] is True
    assert "before val/loss reached a plateau" not in caplog.text
    # a budget that ends training while val/loss still improves: said, and recorded
    steps = make_cfg(*QUICK, "trainer.max_steps=30")
    fit(steps)
    summary = json.loads((Path(steps.paths.output_dir) / "metrics.json").read_text())
    assert summary["stop_reason"] == "reached trainer.max_steps=30"
    assert summary["plateau"] is False
    said = "training reached trainer.max_steps=30 before val/loss reached a plateau: it had "
    assert re.search(
        rf"{said}not improved for [01] epoch\(s\), and early stopping waits 10", caplog.text
    )
    unknown = make_cfg(*QUICK, "callbacks.early_stopping=null")
    fit(unknown)
    summary = json.loads((Path(unknown.paths.output_dir) / "metrics.json").read_text())
    assert summary["stop_reason"] == "completed trainer.max_epochs=2"
    assert summary["plateau"] is None


def test_a_regression_csv_with_an_id_column_trains_with_the_defaults(
    make_cfg: MakeCfg, tmp_path: Path
) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    frame.insert(0, "patient_id", [f"p{i:04d}" for i in range(len(frame))])  # text: not a feature
    path = tmp_path / "diabetes.csv"
    frame.to_csv(path, index=False)
    data = ["data=csv", f"data.path={path}", "data.target=target"]
    with pytest.raises(ConfigError, match=r"feature columns \['patient_id'\] are not numeric"):
        fit(make_cfg(*data, *QUICK))
    cfg = make_cfg(*data, "data.exclude=[patient_id]", *QUICK)  # model=auto, default callbacks
    metrics = fit(cfg)
    assert {"test/mae", "test/r2"} <= set(metrics) and "test/acc" not in metrics
    with pytest.raises(ConfigError, match="model=classification needs classification data"):
        fit(make_cfg(*data, "data.exclude=[patient_id]", "model=classification", *QUICK))
    with pytest.raises(ConfigError, match=r"data.exclude: columns \['id'\] are not in"):
        fit(make_cfg(*data, "data.exclude=[id]", *QUICK))


def test_a_null_seed_is_drawn_and_recorded(make_cfg: MakeCfg) -> None:
    cfg = make_cfg("seed=null", "debug=fast_dev_run", *QUICK)
    fit(cfg)
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["seed"]
    assert isinstance(saved, int)
    assert f"seed: {saved}" in (Path(cfg.paths.output_dir) / "config.yaml").read_text()


def _pairs() -> list[tuple[str, str]]:
    from trainlab.runtime.build import nets_by_modality

    fits = nets_by_modality()
    return [(n, d) for d, modality in bundled_data().items() for n in fits.get(modality, [])]


@pytest.mark.parametrize(("net", "data"), _pairs(), ids=[f"{n}-{d}" for n, d in _pairs()])
def test_every_net_trains_on_every_bundled_dataset_it_reads(
    net: str, data: str, make_cfg: MakeCfg
) -> None:
    bare = ["callbacks=none", "baselines=false", "+trainer.enable_progress_bar=false"]
    cfg = make_cfg(
        f"net={net}", f"data={data}", *small_data(data), "+trainer.fast_dev_run=4", *bare
    )
    metrics = fit(cfg)
    assert {"val/loss", "test/loss"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())


def test_a_gcn_reads_communities_from_the_edges(make_cfg: MakeCfg) -> None:
    """Noisy node features alone (the logistic baseline) barely beat chance; averaging over
    neighbours, mostly of the same community, does much better."""
    metrics = fit(make_cfg("experiment=sbm_gcn", "trainer.max_epochs=100", *QUICK[1:]))
    assert metrics["baseline/logistic/test/acc"] < 0.45
    assert metrics["test/acc"] > metrics["baseline/logistic/test/acc"] + 0.2
