"""Rebuild a finished training run (its data, net and weights) from its run directory."""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from trainlab.calibration import load_calibrator
from trainlab.calibration.conformal import load_conformal
from trainlab.errors import ConfigError
from trainlab.runtime.build import build_data, build_model

CONFIG_NAME = "config.yaml"
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


def check_checkpoint(path: str | Path, key: str = "ckpt_path", resume: bool = False) -> Path:
    """Check that ``path`` is a checkpoint trainlab can read (to resume from, with ``resume``),
    before anything is built or written.

    Raises:
        ConfigError: naming ``key`` and the file: missing, truncated or not a checkpoint, or
            holding the weights alone where training is to resume.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{key}: {str(path)!r} is not a file")
    if not zipfile.is_zipfile(file):  # torch.save writes a zip archive; a cut-off one is not
        raise ConfigError(
            f"{key}: {file} is not a readable checkpoint (truncated, or not written by torch.save)"
        )
    try:  # mmap: the tensors are not read
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        return file  # objects of the user's own: Lightning loads them itself
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ConfigError(f"{key}: cannot read {file}: {err}") from err
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ConfigError(f"{key}: {file} holds no model weights; is it a Lightning checkpoint?")
    if resume and "optimizer_states" not in state:
        raise ConfigError(
            f"{key}: {file} holds the weights alone (best.ckpt is written so) and cannot "
            "resume training; resume from the run's checkpoints/last.ckpt"
        )
    return file


def locate(run_dir: str | None, ckpt_path: str | None) -> tuple[Path, Path]:
    """Find the run directory and checkpoint from either of them.

    A checkpoint's run is the nearest parent folder holding ``config.yaml``; a run's checkpoint
    is its best one (``checkpoints/best.ckpt``), else its last.

    Raises:
        ConfigError: neither is given, or they do not exist.
    """
    if ckpt_path:
        ckpt = check_checkpoint(ckpt_path).resolve()
        runs = [p for p in ckpt.parents if (p / CONFIG_NAME).is_file()]
        if run_dir:
            runs = [Path(run_dir).resolve()]
        if not runs or not (runs[0] / CONFIG_NAME).is_file():
            raise ConfigError(
                f"ckpt_path: no {CONFIG_NAME} in a parent folder of {ckpt}; give run_dir=..."
            )
        return runs[0], ckpt
    if not run_dir:
        raise ConfigError("give run_dir=<a training run directory> or ckpt_path=<a checkpoint>")
    run = Path(run_dir).resolve()
    if not (run / CONFIG_NAME).is_file():
        raise ConfigError(f"run_dir: {run} holds no {CONFIG_NAME}; is it a trainlab training run?")
    for name in ("best.ckpt", "last.ckpt"):
        if (run / "checkpoints" / name).is_file():
            return run, check_checkpoint(run / "checkpoints" / name, "run_dir")
    raise ConfigError(f"run_dir: {run}/checkpoints holds neither best.ckpt nor last.ckpt")


def restore(run_dir: str | None, ckpt_path: str | None) -> Restored:
    """Rebuild the run's data (same split and normalisation) and model, and load the weights."""
    run, ckpt = locate(run_dir, ckpt_path)
    cfg = OmegaConf.load(run / CONFIG_NAME)
    assert isinstance(cfg, DictConfig)
    if (run / VOCAB_FILE).is_file() and "vocab_file" in cfg.data:
        cfg.data.vocab_file = str(run / VOCAB_FILE)  # encode text exactly as in training
    dm = build_data(cfg)
    model = build_model(cfg, dm)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    model.load_state_dict(state["state_dict"])
    model.eval()
    return Restored(run, ckpt, cfg, dm, model, load_calibrator(state), load_conformal(state))
