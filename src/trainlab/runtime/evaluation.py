"""Evaluate a finished run on one split, and write predictions to CSV."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from trainlab.calibration.metrics import calibration_report, headline_metrics
from trainlab.calibration.selective import choose_threshold
from trainlab.compat import lightning_says_what_is_missing
from trainlab.data.base import SPLITS
from trainlab.data.tables import numeric_features
from trainlab.errors import ConfigError
from trainlab.models.outputs import gather, predictions, split_loader, split_logits
from trainlab.runtime.restore import Restored, restore
from trainlab.trust.files import write_new

log = logging.getLogger(__name__)
logging.getLogger("lightning").handlers.clear()  # see runtime/training.py


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the run's checkpoint on ``cfg.split``; metrics are named ``<split>/<metric>``.

    The split is read through the DataModule's dataloader; ``val`` runs the model's
    ``validation_step``, ``train`` and ``test`` its ``test_step``.
    """
    if cfg.split not in SPLITS:
        raise ConfigError(f"split {cfg.split!r} is unknown; use one of {SPLITS}")
    run = restore(
        cfg.run_dir,
        cfg.ckpt_path,
        cfg.get("trust_targets") or (),
        bool(cfg.get("allow_data_change", False)),
    )
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = split_loader(run.datamodule, cfg.split)
    with lightning_says_what_is_missing(run.model):
        if cfg.split == "val":
            results = trainer.validate(run.model, dataloaders=loader, verbose=False)
        else:
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
    dm = run.datamodule
    if callable(encode := getattr(dm, "encode_frame", None)):  # text: a column of strings
        frame = pd.read_csv(path)
        target = getattr(dm, "target", None)
        y = frame[target].to_numpy() if target and target in frame.columns else None
        return encode(frame), y
    if not callable(getattr(dm, "transform", None)):
        raise ConfigError(
            f"input_csv: {type(dm).__name__} has no transform() to prepare raw feature rows; "
            "predict on one of its splits instead (split=val, test or predict)"
        )
    frame = pd.read_csv(path)
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
    abstained = output.with_suffix(".abstain.json")  # with abstain=<risk>: what it achieved
    for path in (output, abstained) if cfg.get("abstain") is not None else (output,):
        if path.exists():
            raise ConfigError(
                f"output: {path} exists; choose another path (nothing is overwritten)"
            )
    run = restore(
        cfg.run_dir,
        cfg.ckpt_path,
        cfg.get("trust_targets") or (),
        bool(cfg.get("allow_data_change", False)),
    )
    dm, model = run.datamodule, run.model
    targets: Any
    if cfg.input_csv:
        x, targets = _features_from_csv(run, Path(cfg.input_csv))
        batch = getattr(dm, "eval_batch_size", None) or 256
        out, _ = gather(model, [(xb,) for xb in x.split(batch)])
    else:
        out, y = gather(model, split_loader(dm, cfg.split))  # checks the split
        targets = None if y is None else y.numpy()
    calibrated = cfg.get("calibrated", True)
    if calibrated and run.calibrator is None and dm.task == "classification":
        log.warning("%s holds no calibrator: writing uncalibrated probabilities", run.checkpoint)
    with torch.no_grad():
        if calibrated and run.calibrator is not None:
            out = run.calibrator(out)
        merged = {
            k: v.numpy()
            for k, v in predictions(model, out, dm.task, getattr(dm, "target_stats", None)).items()
        }
    table = pd.DataFrame(index=pd.RangeIndex(len(out), name="row"))
    summary: dict[str, Any] | None = None
    names = getattr(dm, "class_names", None)
    if dm.task == "classification":
        names = names or [str(i) for i in range(dm.num_outputs)]
        if targets is not None and cfg.input_csv is None:
            table["target"] = [names[i] for i in targets]
        elif targets is not None:
            table["target"] = targets
        table["pred"] = [names[i] for i in merged["pred"]]
        table["pred_index"] = merged["pred"]
        for i, name in enumerate(names):
            table[f"prob_{name}"] = merged["probs"][:, i]
        if cfg.get("sets"):
            if run.conformal is None:
                raise ConfigError(
                    f"sets: {run.checkpoint} holds no conformal sets (the run had "
                    "callbacks.calibration.conformal_alpha=null or no calibration)"
                )
            chosen = run.conformal.predict(torch.from_numpy(merged["probs"]))
            table["set"] = [
                "|".join(n for n, keep in zip(names, row, strict=True) if keep)
                for row in chosen.tolist()
            ]
            table["set_size"] = chosen.sum(1).numpy()
        if (risk := cfg.get("abstain")) is not None:
            summary = _abstain(table, run, merged["probs"], float(risk))
    else:
        if cfg.get("abstain") is not None:
            raise ConfigError("abstain: selective prediction needs class probabilities")
        if targets is not None:
            mean, std = getattr(dm, "target_stats", None) or (0.0, 1.0)
            t = np.asarray(targets, dtype=np.float64).reshape(-1)
            table["target"] = t * std + mean if cfg.input_csv is None else t
        table["pred"] = merged["pred"]
    write_new(output, spreadsheet_safe(table).to_csv())
    if summary is not None:  # after the predictions it describes
        write_new(abstained, json.dumps(summary, indent=2))
    return output


def _abstain(table: pd.DataFrame, run: Restored, probs: np.ndarray, risk: float) -> dict[str, Any]:
    """Mark the rows whose confidence falls below the threshold that met ``risk`` on the
    validation split; returns what was achieved: the coverage, and with targets the risk."""
    if not 0.0 <= risk <= 1.0:
        raise ConfigError(f"abstain must be a target risk in [0, 1], got {risk}")
    if run.selective is None:
        raise ConfigError(
            f"abstain: {run.checkpoint} holds no validation confidences (the run had no "
            "calibration: callbacks.calibration)"
        )
    chosen = choose_threshold(run.selective["confidence"], run.selective["hits"], risk)
    confidence = probs.max(axis=1)
    answered = confidence >= chosen.threshold
    table["confidence"] = confidence
    table["abstain"] = ~answered
    summary: dict[str, Any] = {
        "target_risk": risk,
        "threshold": chosen.threshold if math.isfinite(chosen.threshold) else None,
        "chosen_on": "val",
        "val_coverage": chosen.val_coverage,
        "val_risk": chosen.val_risk if math.isfinite(chosen.val_risk) else None,
        "coverage": float(answered.mean()),
    }
    if "target" in table and "pred" in table:
        right = (table["target"] == table["pred"]).to_numpy()
        summary["risk"] = float(1 - right[answered].mean()) if answered.any() else None
    shown = ", ".join(f"{k} {v:.4g}" for k, v in summary.items() if isinstance(v, float))
    log.info("abstain=%s: %s (threshold chosen on the validation split)", risk, shown)
    return summary


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (``=HYPERLINK(...)``), quoted with a
    leading ``'``; numbers written as text (``-1``) stay as they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its text cells and column names safe to open in a spreadsheet."""
    safe = table.rename(columns=_cell)
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(_cell)
    return safe
