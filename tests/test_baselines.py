"""Baselines in every run: scored like the network, on the same splits, and judged in words."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from tests.test_train import QUICK
from trainlab.errors import ConfigError
from trainlab.runtime.build import build_data
from trainlab.runtime.training import fit

MakeCfg = Callable[..., DictConfig]


def _summary(cfg: DictConfig) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())


def test_baselines_are_scored_on_the_runs_own_splits(make_cfg: MakeCfg) -> None:
    cfg = make_cfg(*QUICK)
    metrics = fit(cfg)
    saved = _summary(cfg)["metrics"]
    for name in ("majority", "logistic"):
        for split in ("val", "test"):
            for metric in ("loss", "acc", "f1"):
                assert np.isfinite(saved[f"baseline/{name}/{split}/{metric}"])
    assert metrics["baseline/logistic/test/acc"] == saved["baseline/logistic/test/acc"]

    # By hand, on the same split: logistic regression on standardised flattened inputs.
    dm = build_data(cfg)
    (x_train, y_train), (x_test, y_test) = dm.tensors("train"), dm.tensors("test")
    scaler = StandardScaler().fit(x_train.flatten(1).numpy())
    clf = LogisticRegression(max_iter=300, random_state=cfg.seed)
    clf.fit(scaler.transform(x_train.flatten(1).numpy()), y_train.numpy())
    by_hand = (clf.predict(scaler.transform(x_test.flatten(1).numpy())) == y_test.numpy()).mean()
    assert saved["baseline/logistic/test/acc"] == pytest.approx(by_hand, abs=1e-6)
    majority = np.bincount(y_train.numpy()).argmax()
    assert saved["baseline/majority/test/acc"] == pytest.approx((y_test.numpy() == majority).mean())
    assert saved["baseline/majority/test/acc"] < 0.2 < 0.9 < saved["baseline/logistic/test/acc"]


def test_a_net_that_does_not_beat_the_linear_baseline_is_told_so(
    make_cfg: MakeCfg, caplog: pytest.LogCaptureFixture
) -> None:
    # Two epochs of an MLP on 442 rows of diabetes data: ridge regression does better.
    cfg = make_cfg(
        "experiment=diabetes_regression", "model.monitor=val/r2", "model.mode=max", *QUICK
    )
    with caplog.at_level(logging.WARNING):
        metrics = fit(cfg)
    summary = _summary(cfg)
    assert metrics["val/r2"] < metrics["baseline/ridge/val/r2"]
    assert summary["baselines"]["beaten"] is False
    assert "does not beat the ridge baseline on val/r2" in summary["baselines"]["verdict"]
    assert "does not beat the ridge baseline" in caplog.text
    # The trivial predictor (the training mean) explains nothing on new data.
    assert abs(metrics["baseline/mean/test/r2"]) < 0.1
    assert 20 < metrics["baseline/ridge/test/mae"] < 200  # in the target's units, like the net


def test_baselines_can_be_capped_and_switched_off(make_cfg: MakeCfg) -> None:
    cfg = make_cfg("baseline_samples=100", *QUICK)
    fit(cfg)
    notes = _summary(cfg)["baselines"]["notes"]
    assert any(re.search(r"fit on 100 of 1\d{3} training samples", n) for n in notes), notes
    for split, size in (("val", 180), ("test", 360)):  # digits: 10% and 20% of 1,797
        assert f"scored on the first 100 of {size} {split} samples (baseline_samples=100)" in str(
            notes
        )

    for switch in ("baselines=false", "callbacks.baselines=null"):  # the key, or the part left out
        off = make_cfg(switch, *QUICK)
        metrics = fit(off)
        assert not [k for k in metrics if k.startswith("baseline/")]
        assert "baselines" not in _summary(off)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("baselines=maybe", "baselines must be true or false, got 'maybe'"),
        ("baseline_samples=0", "baseline_samples must be a positive integer, got 0"),
    ],
)
def test_bad_baseline_settings_fail_early(make_cfg: MakeCfg, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fit(make_cfg(override, *QUICK))


def test_the_trivial_baseline_predicts_the_training_frequencies_of_imbalanced_classes(
    make_cfg: MakeCfg, tmp_path: Path
) -> None:
    """Classes of 60%, 30% and 10%: the majority baseline's loss is the cross-entropy of the
    test labels under the training split's class frequencies (uniform ones would give ln 3)."""
    rng = np.random.default_rng(0)
    labels = rng.choice(["common", "middle", "rare"], size=300, p=[0.6, 0.3, 0.1])
    values = rng.normal(size=300)
    rows = "".join(f"{v:.4f},{label}\n" for v, label in zip(values, labels, strict=True))
    (tmp_path / "imbalanced.csv").write_text("x,y\n" + rows)
    data = ["data=csv", f"data.path={tmp_path / 'imbalanced.csv'}", "data.target=y"]
    cfg = make_cfg(*data, *QUICK)
    fit(cfg)
    saved = _summary(cfg)["metrics"]
    dm = build_data(cfg)
    y_train, y_test = dm.tensors("train")[1].numpy(), dm.tensors("test")[1].numpy()
    freq = np.bincount(y_train, minlength=3) / len(y_train)
    assert freq.max() > 0.5 > 0.15 > freq.min()  # imbalanced, as drawn
    expected = -np.log(freq[y_test]).mean()
    assert saved["baseline/majority/test/loss"] == pytest.approx(expected, rel=1e-4)
    assert abs(expected - np.log(3)) > 0.1
    assert saved["baseline/majority/test/acc"] == pytest.approx((y_test == freq.argmax()).mean())


class LargeData(pl.LightningDataModule):
    """A DataModule of one's own whose splits stream 10,000 batches each and count what they
    serve: the baselines must stop at their cap."""

    task, modality, num_outputs, input_shape = "classification", "tabular", 10, (64,)

    def __init__(self) -> None:
        super().__init__()
        self.served = {"train": 0, "val": 0, "test": 0}

    def _stream(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(0)
        for _ in range(10_000):
            self.served[split] += 1
            yield torch.randn(32, 64, generator=generator), torch.randint(0, 10, (32,))

    def train_dataloader(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._stream("train")

    def val_dataloader(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._stream("val")

    def test_dataloader(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._stream("test")


def test_baselines_read_at_most_their_cap_of_every_split(make_cfg: MakeCfg) -> None:
    from trainlab.experiments.baselines import fit_baselines
    from trainlab.runtime.build import build_model

    cfg = make_cfg(*QUICK)
    model = build_model(cfg, build_data(cfg))
    data = LargeData()
    found = fit_baselines(model, data, max_samples=200)
    assert data.served == {"train": 7, "val": 7, "test": 7}  # 7 batches of 32 hold 200
    assert {"baseline/logistic/val/loss", "baseline/majority/test/acc"} <= set(found.metrics)


def test_a_linear_fit_is_reused_only_for_the_same_data_and_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The jobs of an in-process sweep share one fit of the linear baseline; a changed sample,
    label, shape or setting fits again, and a reused fit predicts what a new one would."""
    from sklearn.pipeline import Pipeline, make_pipeline

    from trainlab.experiments import baselines

    fits: list[int] = []
    real_fit = Pipeline.fit
    monkeypatch.setattr(
        Pipeline, "fit", lambda self, *a, **k: fits.append(1) or real_fit(self, *a, **k)
    )
    monkeypatch.setattr(baselines, "_FITTED", baselines.OrderedDict())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)

    def pipeline(**settings: object) -> Pipeline:
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, **settings))

    first = baselines._fitted(pipeline(random_state=1), x, y)
    again = baselines._fitted(pipeline(random_state=2), x.copy(), y.copy())  # lbfgs: no seed
    assert again is first and len(fits) == 1
    fresh = real_fit(pipeline(), x, y)
    assert np.array_equal(again.predict_proba(x), fresh.predict_proba(x))

    changed_x = x.copy()
    changed_x[17, 3] += 1e-3
    changed_y = y.copy()
    changed_y[5] = 1 - changed_y[5]
    for args in [
        (pipeline(), changed_x, y),
        (pipeline(), x, changed_y),
        (pipeline(), x.reshape(100, 10), y[:100]),
        (pipeline(C=0.1), x, y),
        (pipeline(solver="saga", random_state=1), x, y),
    ]:
        before = len(fits)
        assert baselines._fitted(*args) is not first
        assert len(fits) == before + 1
    assert len(baselines._FITTED) == baselines.FITTED_KEPT  # bounded
