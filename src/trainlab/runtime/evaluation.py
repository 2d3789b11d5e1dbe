"""Evaluate a finished run on one split, and write predictions to CSV."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from trainlab.calibration.metrics import calibration_report, headline_metrics
from trainlab.callbacks.calibration import split_logits
from trainlab.data.base import SPLITS
from trainlab.data.csv import numeric_features
from trainlab.errors import ConfigError
from trainlab.runtime.restore import Restored, restore

log = logging.getLogger(__name__)
logging.getLogger("lightning").handlers.clear()  # see runtime/training.py


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is unknown; use one of {SPLITS}")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the run's checkpoint on ``cfg.split``; metrics are named ``<split>/<metric>``."""
    _check_split(cfg.split)
    run = restore(cfg.run_dir, cfg.ckpt_path)
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    dm = run.datamodule
    if cfg.split == "val":
        results = trainer.validate(run.model, dataloaders=dm.val_dataloader(), verbose=False)
    else:
        loader = dm.test_dataloader() if cfg.split == "test" else dm.loader("train", shuffle=False)
        results = trainer.test(run.model, dataloaders=loader, verbose=False)
    metrics = {
        k.replace("test/", f"{cfg.split}/", 1): float(v) for r in results for k, v in r.items()
    }
    if run.calibrator is not None:
        metrics.update(_calibration_metrics(run, cfg.split))
    out = Path(cfg.paths.output_dir) / "eval_metrics.json"
    out.write_text(
        json.dumps(
            {
                "run_dir": str(run.run_dir),
                "checkpoint": str(run.checkpoint),
                "split": cfg.split,
                "metrics": metrics,
            },
            indent=2,
        )
    )
    return metrics


def _calibration_metrics(run: Restored, split: str) -> dict[str, float]:
    """Calibration of ``split`` without and with the run's saved calibrator."""
    logits, labels = split_logits(run.model, run.datamodule, split)
    with torch.no_grad():
        calibrated = run.calibrator(logits)
    return headline_metrics(
        calibration_report(logits, labels), calibration_report(calibrated, labels), split
    )


def _features_from_csv(run: Restored, path: Path) -> tuple[torch.Tensor, np.ndarray | None]:
    """Read inputs (and targets, where the file has the target column) from a CSV file."""
    if not path.is_file():
        raise ConfigError(f"input_csv: file {str(path)!r} does not exist")
    frame = pd.read_csv(path)
    dm = run.datamodule
    names = dm.feature_names
    target = run.cfg.data.get("target")
    if names:
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise ConfigError(
                f"input_csv: {path} lacks feature columns {missing}; "
                f"the model was trained on {names}"
            )
        features = frame[names]
    else:
        features = frame.drop(columns=[c for c in ("target", target) if c in frame.columns])
    size = int(np.prod(dm.input_shape))
    if features.shape[1] != size:
        raise ConfigError(
            f"input_csv: {path} has {features.shape[1]} feature columns; the model reads {size}"
        )
    values = numeric_features(features, f"input_csv: {path}")
    x = dm.transform(values.reshape(-1, *dm.input_shape))
    y = frame[target].to_numpy() if target and target in frame.columns else None
    return x, y


def predict(cfg: DictConfig) -> Path:
    """Write predictions (and class probabilities) for a split or a CSV file to ``cfg.output``.

    Raises:
        ConfigError: the output file exists (it is never overwritten), or the input is unusable.
    """
    output = Path(cfg.output)
    if output.exists():
        raise ConfigError(f"output: {output} exists; choose another path (nothing is overwritten)")
    run = restore(cfg.run_dir, cfg.ckpt_path)
    dm, model = run.datamodule, run.model
    targets: Any
    if cfg.input_csv:
        x, targets = _features_from_csv(run, Path(cfg.input_csv))
    else:
        _check_split(cfg.split)
        x, y = dm.tensors(cfg.split)
        targets = y.numpy()
    calibrator = run.calibrator if cfg.get("calibrated", True) else None
    if cfg.get("calibrated", True) and run.calibrator is None and dm.class_names is not None:
        log.warning("%s holds no calibrator: writing uncalibrated probabilities", run.checkpoint)
    with torch.no_grad():
        logits = [model(xb) for xb in x.split(dm.eval_batch_size)]
        if calibrator is not None:
            logits = [calibrator(z) for z in logits]
        outs = [model.predict_outputs(z) for z in logits]
    merged = {k: torch.cat([o[k] for o in outs]).numpy() for k in outs[0]}
    table = pd.DataFrame(index=pd.RangeIndex(len(x), name="row"))
    names = dm.class_names
    if names is not None:
        if targets is not None and cfg.input_csv is None:
            table["target"] = [names[i] for i in targets]
        elif targets is not None:
            table["target"] = targets
        table["pred"] = [names[i] for i in merged["pred"]]
        table["pred_index"] = merged["pred"]
        for i, name in enumerate(names):
            table[f"prob_{name}"] = merged["probs"][:, i]
    else:
        if targets is not None:
            mean, std = dm.target_stats
            t = np.asarray(targets, dtype=np.float64).reshape(-1)
            table["target"] = t * std + mean if cfg.input_csv is None else t
        table["pred"] = merged["pred"]
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output)
    return output
