"""Export: the calibrated model with its input normalisation, checked by a real runtime."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from sklearn.datasets import load_digits

from tests.conftest import compose_cfg
from tests.test_train import QUICK
from trainlab.errors import ConfigError
from trainlab.runtime.export import export
from trainlab.runtime.restore import restore
from trainlab.runtime.training import fit

MakeCfg = Callable[..., DictConfig]


def _export(run_dir: Path, tmp_path: Path, *overrides: str) -> dict:
    cfg = compose_cfg("export", [f"run_dir={run_dir}", *overrides], tmp_path / "export")
    return export(cfg)


def test_onnx_export_folds_in_normalisation_and_calibration(
    make_cfg: MakeCfg, tmp_path: Path
) -> None:
    import onnxruntime as ort

    cfg = make_cfg(*QUICK)
    fit(cfg)
    run_dir = Path(cfg.paths.output_dir)
    report = _export(run_dir, tmp_path)
    assert report["max_abs_diff"] < 1e-4 and report["samples"] == 360
    assert report["latency_ms"]["exported"] > 0 and report["runtime"] == "onnxruntime"
    sidecar = json.loads((run_dir / "export" / "export.json").read_text())
    assert sidecar["input_shape"] == [1, 8, 8] and sidecar["calibrated"] is True
    assert sidecar["class_names"] == [str(i) for i in range(10)] and sidecar["opset"] == 18

    # Raw pixels from scikit-learn, any batch size: the file normalises and calibrates itself.
    raw = load_digits().images[:13, None].astype(np.float32)
    session = ort.InferenceSession(str(run_dir / "export" / "model.onnx"))
    probs = session.run(None, {"input": raw})[0]
    run = restore(str(run_dir), None)
    with torch.no_grad():
        logits = run.model(run.datamodule.transform(raw))
        expected = run.calibrator(logits).softmax(1).numpy()
    assert probs.shape == (13, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert np.abs(probs - expected).max() < 1e-5

    with pytest.raises(ConfigError, match="exists; choose another path"):
        _export(run_dir, tmp_path)
    with pytest.raises(ConfigError, match=r"differ from PyTorch by up to .* tolerance=0"):
        _export(run_dir, tmp_path, "tolerance=0", f"output={tmp_path / 'strict.onnx'}")
    with pytest.raises(ConfigError, match=r"format 'tflite' is unknown; use one of \['onnx'"):
        _export(run_dir, tmp_path, "format=tflite")


def test_pt2_export_is_torch_exports_program_with_a_batch_axis(
    make_cfg: MakeCfg, tmp_path: Path
) -> None:
    cfg = make_cfg(*QUICK)
    fit(cfg)
    run_dir = Path(cfg.paths.output_dir)
    report = _export(run_dir, tmp_path, "format=pt2")
    assert report["runtime"] == "torch.export" and report["max_abs_diff"] < 1e-4
    assert report["file"] == str(run_dir / "export" / "model.pt2")
    program = torch.export.load(str(run_dir / "export" / "model.pt2"))
    raw = torch.from_numpy(load_digits().images[:13, None].astype(np.float32))
    run = restore(str(run_dir), None)
    with torch.no_grad():
        probs = program.module()(raw)
        expected = run.calibrator(run.model(run.datamodule.transform(raw.numpy()))).softmax(1)
    assert probs.shape == (13, 10) and (probs - expected).abs().max() < 1e-5
    with pytest.raises(ConfigError, match="exists; choose another path"):
        _export(run_dir, tmp_path, "format=pt2")


@pytest.mark.slow
def test_torchscript_pt2_and_a_net_that_cannot_be_exported(
    make_cfg: MakeCfg, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_cfg("experiment=seq_digits_transformer", *QUICK)
    fit(cfg)
    report = _export(Path(cfg.paths.output_dir), tmp_path, "format=torchscript")
    assert report["runtime"] == "torchscript" and report["max_abs_diff"] < 1e-4
    assert (Path(cfg.paths.output_dir) / "export" / "model.pt").is_file()
    assert "PyTorch deprecates TorchScript" in caplog.text and "format=pt2" in caplog.text
    pt2 = tmp_path / "transformer.pt2"
    report = _export(Path(cfg.paths.output_dir), tmp_path, "format=pt2", f"output={pt2}")
    assert report["runtime"] == "torch.export" and report["max_abs_diff"] < 1e-4

    graph = make_cfg("experiment=karate_gcn", *QUICK)
    fit(graph)
    with pytest.raises(ConfigError, match="net GNN reads Data batches; export handles nets"):
        _export(Path(graph.paths.output_dir), tmp_path)
