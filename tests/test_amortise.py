"""Several optimiser steps per Lightning step (``steps_per_call``): the run of the plain path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from tests.conftest import compose_cfg
from trainlab.errors import ConfigError
from trainlab.runtime.amortise import AUTO_GROUP, amortise
from trainlab.runtime.build import build_data, build_model
from trainlab.runtime.training import build_trainer, check_top_level, fit

# digits at batch 64: 20 training batches an epoch, so groups of 3 end on a shorter one
COMMON = [
    "trainer.accelerator=cpu",
    "trainer.max_epochs=3",
    "callbacks.progress_bar=null",
    "callbacks.early_stopping=null",
    "seed=5",
]


def train(
    root: Path, *overrides: str, common: list[str] = COMMON
) -> tuple[dict[str, float], dict[str, Any], pd.DataFrame]:
    """Metrics, last checkpoint and logged curves of one run."""
    cfg = compose_cfg("train", [*common, *overrides], root)
    metrics = fit(cfg)
    out = Path(cfg.paths.output_dir)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    return metrics, ckpt, pd.read_csv(out / "csv" / "metrics.csv")


@pytest.mark.parametrize(
    "settings",
    [
        [],
        ["trainer.gradient_clip_val=0.05", "model/scheduler=cosine"],
        ["trainer.gradient_clip_val=0.01", "trainer.gradient_clip_algorithm=value"],
        # mode=max on val/loss: every epoch counts as a stall, so the plateau halves the rate
        ["model/scheduler=plateau", "model.scheduler.patience=0", "model.mode=max"],
        ["trainer.max_steps=25"],  # stops inside the second group of the second epoch
    ],
    ids=["adam", "clip-norm+cosine", "clip-value", "plateau", "max-steps"],
)
def test_grouped_steps_give_the_weights_of_the_plain_path(
    tmp_path: Path, settings: list[str]
) -> None:
    plain_metrics, plain, plain_curves = train(tmp_path / "plain", "steps_per_call=1", *settings)
    grouped_metrics, grouped, grouped_curves = train(
        tmp_path / "grouped", "steps_per_call=3", *settings
    )
    assert plain["global_step"] == grouped["global_step"]
    weights, same = plain["state_dict"], grouped["state_dict"]
    assert weights.keys() == same.keys()
    assert all(torch.equal(weights[k], same[k]) for k in weights)
    assert grouped_metrics == plain_metrics
    # the loggers see the same curves at the same steps: learning rate, losses, metrics
    pd.testing.assert_frame_equal(plain_curves, grouped_curves)


def test_the_schedules_really_moved(tmp_path: Path) -> None:
    """The comparisons above would pass with schedules that never step; they do step."""
    plateau = ["model/scheduler=plateau", "model.scheduler.patience=0", "model.mode=max"]
    _, _, curves = train(tmp_path, "steps_per_call=3", *plateau)
    lrs = curves["lr-Adam"].dropna().tolist()
    assert lrs == [1e-3, 1e-3, 5e-4]  # the first epoch sets the best; the second stalls


def setup(tmp_path: Path, *overrides: str) -> tuple[Any, Any, Any]:
    cfg = compose_cfg("train", ["trainer.accelerator=cpu", *overrides], tmp_path)
    check_top_level(cfg)
    dm = build_data(cfg)
    model = build_model(cfg, dm)
    trainer = build_trainer(cfg, [], [])
    return trainer, model, dm


def test_auto_groups_when_nothing_counts_batches(tmp_path: Path) -> None:
    trainer, model, dm = setup(tmp_path, "trainer.gradient_clip_val=0.5")
    assert amortise(trainer, model, dm, "auto") == AUTO_GROUP
    assert dm.steps_per_call == model.steps_per_call == AUTO_GROUP
    assert not model.automatic_optimization
    assert model.clip == (0.5, "norm") and trainer.gradient_clip_val is None


@pytest.mark.parametrize(
    "override",
    [
        "+trainer.accumulate_grad_batches=2",
        "+trainer.val_check_interval=5",
        "+trainer.limit_train_batches=4",
        "+trainer.limit_val_batches=1",  # one batch, not all of them
        "+trainer.overfit_batches=2",
        "+callbacks.model_checkpoint.every_n_train_steps=10",
    ],
)
def test_settings_that_count_batches_keep_the_plain_path(tmp_path: Path, override: str) -> None:
    key = override.split("=")[0].rsplit(".", 1)[-1]
    cfg = compose_cfg("train", ["trainer.accelerator=cpu", override], tmp_path)
    dm = build_data(cfg)
    model = build_model(cfg, dm)
    from trainlab.runtime.build import instantiate_dict

    trainer = build_trainer(cfg, instantiate_dict(cfg.get("callbacks"), "callbacks"), [])
    assert amortise(trainer, model, dm, "auto") == 1
    assert model.automatic_optimization and dm.steps_per_call == 1
    with pytest.raises(ConfigError, match=rf"steps_per_call=4 cannot be used with: .*{key}"):
        amortise(trainer, model, dm, 4)


def test_a_task_with_its_own_training_step_keeps_the_plain_path(tmp_path: Path) -> None:
    trainer, model, dm = setup(tmp_path)

    def training_step(self: Any, batch: Any, batch_idx: int) -> Any:
        return self.model_step(batch, "train")

    model.__class__ = type("MyTask", (type(model),), {"training_step": training_step})
    assert amortise(trainer, model, dm, "auto") == 1 and model.automatic_optimization
    with pytest.raises(ConfigError, match="MyTask has a training_step of its own"):
        amortise(trainer, model, dm, 8)


@pytest.mark.parametrize("value", ["fast", 0, -2, 1.5, True])
def test_bad_steps_per_call(tmp_path: Path, value: object) -> None:
    cfg = compose_cfg("train", [f"steps_per_call={value}"], tmp_path)
    with pytest.raises(ConfigError, match="steps_per_call must be 'auto' or an integer >= 1"):
        check_top_level(cfg)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["32-true", "16-mixed", "bf16-mixed"])
def test_grouped_steps_on_a_gpu_match_the_plain_path(tmp_path: Path, precision: str) -> None:
    """On a GPU, with mixed precision (the loss scaler unscales before the task clips)."""
    on_gpu = [o for o in COMMON if not o.startswith("trainer.accelerator")]
    settings = [
        "trainer=gpu",
        f"trainer.precision={precision}",
        "trainer.gradient_clip_val=0.05",
        "model/scheduler=cosine",
    ]
    plain_metrics, plain, _ = train(tmp_path / "p", "steps_per_call=1", *settings, common=on_gpu)
    grouped_metrics, grouped, _ = train(
        tmp_path / "g", "steps_per_call=3", *settings, common=on_gpu
    )
    weights, same = plain["state_dict"], grouped["state_dict"]
    assert all(torch.allclose(weights[k], same[k], rtol=0, atol=1e-6) for k in weights)
    assert grouped_metrics == pytest.approx(plain_metrics, abs=1e-5)
