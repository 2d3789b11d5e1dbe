"""Weight averaging (EMA, SWA), torch.compile and bf16 as config: each trains the default run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import DictConfig

from tests.conftest import compose_cfg
from tests.test_train import QUICK
from trainlab.runtime.evaluation import evaluate
from trainlab.runtime.training import fit

MakeCfg = Callable[..., DictConfig]


def _checkpoint(cfg: DictConfig, name: str) -> dict:
    path = Path(cfg.paths.output_dir) / "checkpoints" / name
    return torch.load(path, map_location="cpu", weights_only=False)


def test_ema_tests_and_saves_the_averaged_weights(make_cfg: MakeCfg, tmp_path: Path) -> None:
    cfg = make_cfg("callbacks=ema", "trainer.max_epochs=4", *QUICK[1:])
    metrics = fit(cfg)
    assert metrics["test/acc"] > 0.8
    plain = compose_cfg("train", ["trainer.max_epochs=4", *QUICK[1:]], tmp_path / "plain")
    fit(plain)
    averaged = _checkpoint(cfg, "last.ckpt")["state_dict"]["net.head.weight"]
    trained = _checkpoint(plain, "last.ckpt")["state_dict"]["net.head.weight"]
    assert not torch.allclose(averaged, trained, atol=1e-4)  # same seed, averaged weights
    again = evaluate(compose_cfg("eval", [f"run_dir={cfg.paths.output_dir}"], tmp_path / "e"))
    assert again["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)


def test_swa_averages_from_its_start_epoch_and_validates_trained_weights_before(
    make_cfg: MakeCfg,
) -> None:
    cfg = make_cfg(
        "callbacks=swa",
        "callbacks.weight_averaging.start_epoch=2",
        "trainer.max_epochs=4",
        *QUICK[1:],
    )
    metrics = fit(cfg)
    curves = pd.read_csv(Path(cfg.paths.output_dir) / "csv" / "metrics.csv")
    first = curves.dropna(subset=["val/loss"]).iloc[0]["val/loss"]
    assert first < 1.5  # epoch 0 validated the weights being trained, not the untrained copy
    state = next(v for k, v in _checkpoint(cfg, "last.ckpt")["callbacks"].items() if "SWA" in k)
    assert state["averaged_epochs"] == 2 and metrics["test/acc"] > 0.8


def test_bf16_mixed_precision_trains_on_the_cpu(make_cfg: MakeCfg) -> None:
    metrics = fit(make_cfg("trainer.precision=bf16-mixed", "trainer.max_epochs=4", *QUICK[1:]))
    assert metrics["test/acc"] > 0.8


@pytest.mark.slow
def test_a_compiled_net_trains_and_its_checkpoint_reads_without_compiling(
    make_cfg: MakeCfg, tmp_path: Path
) -> None:
    cfg = make_cfg("model.compile=true", "trainer.max_epochs=3", *QUICK[1:])
    metrics = fit(cfg)
    assert metrics["test/acc"] > 0.8
    plain = compose_cfg("eval", [f"run_dir={cfg.paths.output_dir}"], tmp_path / "e")
    assert evaluate(plain)["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
