"""The contracts of the README's "Adding your own", used the way a forker uses them: a
DataModule subclass that overrides a loader, a DataModule and a LightningModule of one's own,
images on disk. Each test checks that the model learns, not only that it runs."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from tests.conftest import ROOT, compose_cfg
from tests.forks import NoisyImages
from trainlab.errors import ConfigError
from trainlab.runtime.build import build_data
from trainlab.runtime.evaluation import evaluate, predict
from trainlab.runtime.training import fit

MakeCfg = Callable[..., DictConfig]
QUICK = ["callbacks.progress_bar=null", "callbacks.learning_curves=null", "trainer.accelerator=cpu"]
QUICK += ["seed=0"]


def own_model(cfg: DictConfig, target: str) -> DictConfig:
    """Swap ``cfg.model`` for a LightningModule of one's own (a forker's conf/model/x.yaml)."""
    with open_dict(cfg):
        cfg.model = OmegaConf.create(
            {"_target_": target, "_partial_": True, "monitor": "val/loss", "mode": "min"}
        )
    return cfg


def test_a_subclass_that_overrides_train_dataloader_trains(make_cfg: MakeCfg) -> None:
    """Noise augmentation added in train_dataloader: the run uses that loader and learns."""
    before = NoisyImages.served
    cfg = make_cfg("data._target_=tests.forks.NoisyDigits", "trainer.max_epochs=10", *QUICK)
    metrics = fit(cfg)
    assert NoisyImages.served - before >= 10 * 1257  # ten epochs of the training split
    curves = pd.read_csv(Path(cfg.paths.output_dir) / "csv" / "metrics.csv")
    val_acc = curves["val/acc"].dropna()
    assert val_acc.iloc[0] < 0.9 <= val_acc.max()  # it learned within 10 epochs
    assert metrics["test/acc"] >= 0.9


def test_your_own_datamodule_with_plain_dataloaders(make_cfg: MakeCfg, tmp_path: Path) -> None:
    cfg = make_cfg(
        "data=csv",  # replaced below: any LightningDataModule, by its _target_
        "net=mlp",
        "trainer.max_epochs=12",
        *QUICK,
    )
    with open_dict(cfg):
        cfg.data = OmegaConf.create({"_target_": "tests.forks.DigitsLoaders", "batch_size": 64})
    metrics = fit(cfg)
    assert metrics["test/acc"] >= 0.9
    run = Path(cfg.paths.output_dir)
    # calibration read both splits through the DataModule's DataLoaders
    report = json.loads((run / "calibration.json").read_text())
    assert 0 <= report["after"]["ece"] <= report["before"]["ece"] + 0.02
    assert json.loads((run / "classes.json").read_text()) == [str(i) for i in range(10)]

    # A run directory builds only the targets conf/ names, or those trusted by name.
    with pytest.raises(ConfigError, match=r"trust_targets=\[tests.forks.DigitsLoaders\]"):
        evaluate(compose_cfg("eval", [f"run_dir={run}"], tmp_path / "refused"))
    trust = "trust_targets=[tests.forks.DigitsLoaders]"
    evaluated = evaluate(compose_cfg("eval", [f"run_dir={run}", trust], tmp_path / "eval"))
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert evaluated["test/ece_calibrated"] == pytest.approx(report["after"]["ece"], abs=1e-6)
    out = tmp_path / "pred.csv"
    predict(compose_cfg("predict", [f"run_dir={run}", trust, f"output={out}"], tmp_path / "pred"))
    table = pd.read_csv(out)
    assert len(table) == 360
    assert (table["pred"] == table["target"]).mean() == pytest.approx(metrics["test/acc"])
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="DigitsLoaders has no transform"):
        predict(
            compose_cfg(
                "predict",
                [
                    f"run_dir={run}",
                    trust,
                    f"input_csv={tmp_path / 'x.csv'}",
                    f"output={tmp_path / 'y'}",
                ],
                tmp_path / "pred2",
            )
        )


def test_a_datamodule_missing_an_attribute_is_named(make_cfg: MakeCfg) -> None:
    cfg = make_cfg(*QUICK)
    with open_dict(cfg):
        cfg.data = OmegaConf.create({"_target_": "tests.forks.NoModality"})
    with pytest.raises(ConfigError, match=r"NoModality lacks \['modality'\] after setup\(\)"):
        fit(cfg)
    assert not list(Path(cfg.paths.output_dir).iterdir()), "a rejected run wrote files"


def test_your_own_lightningmodule_trains_evaluates_and_predicts(
    make_cfg: MakeCfg, tmp_path: Path
) -> None:
    cfg = own_model(make_cfg("trainer.max_epochs=15", *QUICK), "tests.forks.TinyClassifier")
    metrics = fit(cfg)
    assert metrics["test/acc"] >= 0.9
    run = Path(cfg.paths.output_dir)
    assert (run / "checkpoints" / "best.ckpt").is_file()
    report = json.loads((run / "calibration.json").read_text())  # calibrates its logits
    assert report["method"] == "temperature"
    trust = "trust_targets=[tests.forks.TinyClassifier]"
    evaluated = evaluate(compose_cfg("eval", [f"run_dir={run}", trust], tmp_path / "eval"))
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    out = tmp_path / "pred.csv"
    predict(compose_cfg("predict", [f"run_dir={run}", trust, f"output={out}"], tmp_path / "pred"))
    table = pd.read_csv(out)
    assert (table["pred"] == table["target"]).mean() == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert table.filter(like="prob_").sum(axis=1).round(5).eq(1).all()


def test_your_own_lightningmodule_may_name_monitor_without_mode(make_cfg: MakeCfg) -> None:
    """Each of monitor and mode is passed only where the constructor names it."""
    cfg = own_model(make_cfg("trainer.max_epochs=2", *QUICK), "tests.forks.MonitoringClassifier")
    with open_dict(cfg):
        cfg.model.monitor = "val/cross_entropy"
    fit(cfg)
    last = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    callbacks = str(last["callbacks"])  # the checkpoint and early stopping watched it
    assert "val/cross_entropy" in callbacks and "'mode': 'min'" in callbacks


def test_your_own_lightningmodule_must_log_the_monitored_metric(make_cfg: MakeCfg) -> None:
    cfg = own_model(make_cfg("trainer.max_epochs=2", *QUICK), "tests.forks.SilentClassifier")
    with pytest.raises(ConfigError, match=r"model.monitor 'val/loss' was not logged"):
        fit(cfg)


def test_your_own_lightningmodule_missing_a_step_is_named(make_cfg: MakeCfg) -> None:
    cfg = own_model(make_cfg("trainer.max_epochs=1", *QUICK), "tests.forks.NoTrainingStep")
    with pytest.raises(ConfigError, match=r"model NoTrainingStep: No `training_step\(\)` method"):
        fit(cfg)


@pytest.mark.slow
def test_images_on_disk_are_read_lazily_and_learned(make_cfg: MakeCfg, digits_pngs: Path) -> None:
    cfg = make_cfg(
        "data=image_folder",
        f"data.root={digits_pngs}",
        "data.augment={rotate: 5, translate: 0.05}",
        "net=cnn",
        "trainer.max_epochs=10",
        *QUICK,
    )
    metrics = fit(cfg)
    assert metrics["test/acc"] >= 0.95
    assert json.loads((Path(cfg.paths.output_dir) / "classes.json").read_text())[:3] == [
        "0",
        "1",
        "2",
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.root=/nowhere"], "data.root: '/nowhere' is not a folder"),
        (["data.augment={spin: 3}"], r"data.augment: unknown key\(s\) \['spin'\]"),
        (["data.augment={rotate: 200}"], r"data.augment.rotate must be in \[0, 180\]"),
        (["data.channels=2"], r"data.channels must be one of \[1, 3\]"),
    ],
)
def test_bad_image_folder_settings(
    overrides: list[str], message: str, make_cfg: MakeCfg, digits_pngs: Path
) -> None:
    cfg = make_cfg("data=image_folder", f"data.root={digits_pngs}", *overrides, *QUICK)
    with pytest.raises(ConfigError, match=message):
        fit(cfg)


def test_your_own_callback_reports_into_the_runs_files(make_cfg: MakeCfg) -> None:
    cfg = make_cfg(
        "trainer.max_epochs=3", "+callbacks.errors._target_=tests.forks.TestErrors", *QUICK
    )
    metrics = fit(cfg)
    run = Path(cfg.paths.output_dir)
    summary = json.loads((run / "metrics.json").read_text())
    diagnostics = json.loads((run / "diagnostics.json").read_text())
    assert diagnostics["trained_batches"] == 3 * math.ceil(
        1257 / cfg.data.batch_size
    )  # 70% of 1,797
    errors = summary["metrics"]["test/errors"]
    assert errors == metrics["test/errors"] == sum(summary["test_errors"].values())
    assert errors == pytest.approx(360 * (1 - metrics["test/acc"]), abs=0.5)
    assert summary["baselines"]["verdict"]  # beside the bundled callbacks' sections


def test_the_readme_states_each_contract_as_the_code_has_it() -> None:
    """The README's tables are ``trainlab.contracts``' tables, word for word."""
    from trainlab.contracts import CONTRACTS, markdown

    readme = (ROOT / "README.md").read_text()
    for name, members in CONTRACTS.items():
        assert markdown(members) in readme, f"the README's {name} table differs from the code's"


def test_trainlab_reads_nothing_of_a_datamodule_or_callback_its_contract_does_not_list() -> None:
    """Every ``getattr`` trainlab does on a DataModule or a callback names a member of its
    contract: a new read must be written into the contract (and so into the README)."""
    from trainlab.contracts import CALLBACK, DATAMODULE

    reads: dict[str, set[str]] = {"dm": set(), "callback": set()}
    pattern = re.compile(r'getattr\((\w+(?:\.\w+)*), "(\w+)"')
    for path in (ROOT / "src" / "trainlab").rglob("*.py"):
        for holder, name in pattern.findall(path.read_text()):
            if holder.split(".")[-1] in ("dm", "datamodule"):
                reads["dm"].add(name)
            elif holder == "callback":
                reads["callback"].add(name)
    assert reads["dm"] and reads["callback"]  # the scan finds the reads
    assert reads["dm"] <= {m.attribute for m in DATAMODULE}
    checkpoints = {"last_model_path", "best_model_path"}  # Lightning's Checkpoint API
    assert reads["callback"] - checkpoints <= {m.attribute for m in CALLBACK}


def test_the_bundled_and_the_forkers_parts_meet_their_contracts(make_cfg: MakeCfg) -> None:
    from tests.forks import DigitsLoaders, NoModality
    from trainlab.callbacks import Calibration
    from trainlab.contracts import DataModuleContract, ReportingCallback

    ok = DigitsLoaders()
    ok.setup("fit")
    assert isinstance(ok, DataModuleContract)
    lacking = NoModality()
    lacking.setup("fit")
    assert not isinstance(lacking, DataModuleContract)
    assert isinstance(build_data(make_cfg("data=signals", "data.samples=300")), DataModuleContract)
    assert isinstance(Calibration(dirpath="."), ReportingCallback)
