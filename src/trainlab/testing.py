"""Contract tests for a project's own parts: the checks trainlab's own tests make of a forker's
DataModule, net and LightningModule, for a project's tests to call (a thin project's
``tests/`` does)::

    cfg = compose(CONF, "myproj", ["trainer.max_epochs=30"], tmp_path)
    check_parts(cfg)                      # the contracts, on one real batch
    metrics = check_learns(cfg)           # it trains, and beats the trivial baseline

Each check fails with the reason a user can act on, not only that something broke.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from trainlab.experiments.baselines import NAMES

__all__ = ["check_learns", "check_parts", "compose"]


def compose(conf: Path, name: str, overrides: Sequence[str], out_dir: Path) -> DictConfig:
    """The training config ``conf/<name>.yaml`` as the project's ``train`` entry composes it
    (its ``conf/`` first, then trainlab's), with the run written under ``out_dir``. Like a
    Hydra job, it sets Hydra's runtime config of this process (its config search path)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from trainlab.runtime.configs import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(Path(conf).resolve()), version_base="1.3"):
        cfg = hydra_compose(name, list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # so trainlab reads the project's conf/ too
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.paths.root_dir = str(out_dir)
        cfg.paths.output_dir = str(Path(out_dir) / "run")
    Path(cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
    return cfg


def check_parts(cfg: DictConfig) -> tuple[Any, torch.nn.Module]:
    """Build the data and the model of ``cfg`` and check them on one training batch.

    - the DataModule has the required members after ``setup("fit")``
      (:class:`~trainlab.contracts.DataModuleContract`), with values trainlab can use;
    - its batches are ``(x, y)`` with ``x`` of shape ``(B, *input_shape)`` and, for
      classification, labels in ``[0, num_outputs)``;
    - the net gives ``(B, num_outputs)``, and one training step gives a finite loss and a
      gradient to every trainable parameter.

    Returns:
        the DataModule and the LightningModule.
    """
    from trainlab.runtime.build import build_data, build_model

    dm = build_data(cfg)  # ConfigError names a missing or unusable member (the contract's)
    x, y = next(iter(dm.train_dataloader()))
    if isinstance(x, torch.Tensor):
        _expect(
            tuple(x.shape[1:]) == tuple(dm.input_shape),
            f"a batch's samples have shape {tuple(x.shape[1:])}, input_shape says "
            f"{tuple(dm.input_shape)}",
        )
    if dm.task == "classification":
        low, high = int(y.min()), int(y.max())
        _expect(
            low >= 0 and high < dm.num_outputs,
            f"labels span [{low}, {high}], outside [0, {dm.num_outputs}) (num_outputs)",
        )
    model = build_model(cfg, dm)  # checks the net's output shape on two samples
    model.train()
    out = model.training_step((x, y), 0)
    loss = out.get("loss") if isinstance(out, Mapping) else out
    if not isinstance(loss, torch.Tensor):
        raise AssertionError(f"training_step gave {out!r}, not a loss or {{'loss': loss}}")
    _expect(bool(torch.isfinite(loss)), f"the first training step's loss is {loss.item()}")
    loss.backward()
    idle = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    _expect(not idle, f"parameters that get no gradient: {idle}")
    model.zero_grad(set_to_none=True)
    return dm, model


def check_learns(cfg: DictConfig, margin: float = 0.05) -> dict[str, float]:
    """Train ``cfg`` (:func:`trainlab.runtime.training.fit`, baselines on) and check that the
    net beats the trivial baseline (majority class, or training mean) on the test split by
    ``margin`` in accuracy, or in R² for regression.

    Returns:
        the run's metrics, for checks of the project's own (e.g. beating the linear baseline).
    """
    from trainlab.runtime.training import fit

    with open_dict(cfg):
        cfg.baselines = True
        cfg.test = True
        if cfg.get("callbacks") is None:
            cfg.callbacks = {}
        if cfg.callbacks.get("baselines") is None:  # a project that left the part out
            cfg.callbacks.baselines = {"_target_": "trainlab.callbacks.ScoreBaselines"}
    metrics = fit(cfg)
    task = "classification" if "test/acc" in metrics else "regression"
    metric = "acc" if task == "classification" else "r2"
    trivial = NAMES[task][0]
    net, base = metrics.get(f"test/{metric}"), metrics.get(f"baseline/{trivial}/test/{metric}")
    if net is None or base is None:
        raise AssertionError(
            f"test/{metric} and the {trivial} baseline's are not in the metrics: {sorted(metrics)}"
        )
    _expect(
        math.isfinite(net) and net >= base + margin,
        f"test/{metric} {net:.3f} does not beat the {trivial} baseline's {base:.3f} by {margin}",
    )
    return metrics


def _expect(ok: bool, message: str) -> None:
    """A failed check, as pytest shows it (and not skipped under ``python -O`` as assert is)."""
    if not ok:
        raise AssertionError(message)
