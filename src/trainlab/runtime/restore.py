"""Rebuild a finished training run (its data, net and weights) from its run directory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainlab.calibration import load_calibrator
from trainlab.calibration.conformal import load_conformal
from trainlab.calibration.selective import load_validation_state
from trainlab.errors import ConfigError
from trainlab.runtime.build import build_data, build_model
from trainlab.runtime.configs import config_dirs
from trainlab.trust.data import check as check_data
from trainlab.trust.data import check_splits
from trainlab.trust.loading import check_buildable, check_checkpoint, load_checkpoint
from trainlab.trust.run_dir import CONFIG, RunDir

VOCAB_FILE = "vocab.json"


@dataclass
class Restored:
    run_dir: Path
    checkpoint: Path
    cfg: DictConfig
    datamodule: Any
    model: Any
    calibrator: Any  # a fitted Calibrator saved with the checkpoint, or None
    conformal: Any = None  # fitted ConformalSets saved with the checkpoint, or None
    selective: Any = None  # the validation split's confidences and hits (selective prediction)


def locate(run_dir: str | None, ckpt_path: str | None) -> tuple[Path, Path]:
    """Find the run directory and checkpoint from either of them.

    A checkpoint's run is the nearest parent folder holding ``config.yaml``; a run's checkpoint
    is its best one (``checkpoints/best.ckpt``), else its last.

    Raises:
        ConfigError: neither is given, or they do not exist.
    """
    if ckpt_path:
        ckpt = check_checkpoint(ckpt_path).resolve()
        runs = [p for p in ckpt.parents if (p / CONFIG).is_file()]
        if run_dir:
            runs = [Path(run_dir).resolve()]
        if not runs or not (runs[0] / CONFIG).is_file():
            raise ConfigError(
                f"ckpt_path: no {CONFIG} in a parent folder of {ckpt}; give run_dir=..."
            )
        return runs[0], ckpt
    if not run_dir:
        raise ConfigError("give run_dir=<a training run directory> or ckpt_path=<a checkpoint>")
    run = Path(run_dir).resolve()
    if not (run / CONFIG).is_file():
        raise ConfigError(f"run_dir: {run} holds no {CONFIG}; is it a trainlab training run?")
    for ckpt in (RunDir(run).best, RunDir(run).latest):
        if ckpt.is_file():
            return run, check_checkpoint(ckpt, "run_dir")
    raise ConfigError(f"run_dir: {run}/checkpoints holds neither best.ckpt nor last.ckpt")


def restore(
    run_dir: str | None,
    ckpt_path: str | None,
    trusted: Sequence[str] = (),
    allow_data_change: bool = False,
) -> Restored:
    """Rebuild the run's data (same split and normalisation) and model, and load the weights.

    The run's ``config.yaml`` builds only the targets this project's configs name, and those in
    ``trusted`` (see :mod:`trainlab.trust.loading`); its checkpoint is read weights-only; its
    data files must be those it trained on unless ``allow_data_change`` (see
    :mod:`trainlab.trust.data`).
    """
    run, ckpt = locate(run_dir, ckpt_path)
    check_data(run, allow_data_change)
    try:
        loaded = OmegaConf.load(run / CONFIG)
        plain = OmegaConf.to_container(loaded, resolve=True)
    except Exception as err:  # omegaconf and yaml raise many kinds; name the file
        raise ConfigError(f"run_dir: cannot read {run / CONFIG}: {err}") from err
    check_buildable(plain, run / CONFIG, config_dirs(), trusted)
    cfg = OmegaConf.create(plain)
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"run_dir: {run / CONFIG} is not a mapping of config keys")
    if (run / VOCAB_FILE).is_file() and "vocab_file" in cfg.data:
        cfg.data.vocab_file = str(run / VOCAB_FILE)  # encode text exactly as in training
    dm = build_data(cfg)
    check_splits(run, dm, allow_data_change)
    model = build_model(cfg, dm)
    state = load_checkpoint(ckpt)
    try:  # what the file holds must fit the run's model; a mismatch is named, not a traceback
        model.load_state_dict(state["state_dict"])
        calibrator, conformal = load_calibrator(state), load_conformal(state)
        selective = load_validation_state(state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"ckpt_path: {ckpt} does not fit the run {run}: {reason}") from err
    model.eval()
    return Restored(run, ckpt, cfg, dm, model, calibrator, conformal, selective)
