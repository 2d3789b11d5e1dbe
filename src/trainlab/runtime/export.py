"""Export a restored run to ONNX, torch.export's ``.pt2`` or TorchScript (deprecated by
PyTorch; ``pt2`` is its successor), and check the file against PyTorch."""

from __future__ import annotations

import io
import json
import logging
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from trainlab.errors import ConfigError
from trainlab.extras import require
from trainlab.models.outputs import split_loader
from trainlab.runtime.restore import restore
from trainlab.trust.files import write_new

log = logging.getLogger(__name__)
logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # its passes log every step
FORMATS = {"onnx": "model.onnx", "pt2": "model.pt2", "torchscript": "model.pt"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ExportedModel(nn.Module):
    """What is exported: raw inputs -> normalised -> net -> calibrated probabilities
    (classification) or values in the target's units (regression)."""

    def __init__(
        self,
        net: nn.Module,
        task: str,
        calibrator: nn.Module | None,
        mean: torch.Tensor | None,
        std: torch.Tensor | None,
        target_stats: tuple[float, float],
    ) -> None:
        super().__init__()
        self.net, self.task = net, task
        self.calibrator = calibrator if calibrator is not None else nn.Identity()
        self.normalise = mean is not None and std is not None
        self.register_buffer("mean", mean if mean is not None else torch.zeros(()))
        self.register_buffer("std", std if std is not None else torch.ones(()))
        self.target_mean, self.target_std = target_stats

    mean: torch.Tensor
    std: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalise:
            x = (x - self.mean) / self.std
        out = self.net(x)
        if self.task == "classification":
            return self.calibrator(out).softmax(dim=1)  # (B, K) calibrated probabilities
        return out * self.target_std + self.target_mean  # (B, 1) in the target's units


def _normalisation(dm: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The data's fixed input normalisation as tensors broadcastable over a batch."""
    stats = getattr(dm, "normalization", None)
    if not callable(stats):
        return None, None
    mean, std = stats()
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)


def export(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.run_dir``'s model, check it, and return (and save) the report.

    Raises:
        ConfigError: an unknown format, an output that exists, a net that cannot be exported,
            or outputs that differ from PyTorch by more than ``cfg.tolerance``.
    """
    if cfg.format not in FORMATS:
        raise ConfigError(f"format {cfg.format!r} is unknown; use one of {sorted(FORMATS)}")
    if cfg.format == "onnx":
        require("export", "format=onnx")
    if cfg.format == "torchscript":
        log.warning(
            "format=torchscript: PyTorch deprecates TorchScript (Lightning 2.6.1 deprecates "
            "to_torchscript); format=pt2 (torch.export) is its successor, checked the same way"
        )
    run = restore(
        cfg.run_dir,
        cfg.ckpt_path,
        cfg.get("trust_targets") or (),
        bool(cfg.get("allow_data_change", False)),
    )
    dm, model = run.datamodule, run.model
    if getattr(dm, "permute", False):
        raise ConfigError(
            "the run trained on permuted inputs (data.permute=true), a control experiment; an "
            "exported model would not permute its inputs"
        )
    net = getattr(model, "net", None)
    if not isinstance(net, nn.Module):
        raise ConfigError(f"model {type(model).__name__} has no .net to export")
    if dm.task not in ("classification", "regression"):
        raise ConfigError(f"export supports classification and regression, not {dm.task!r}")
    mean, std = _normalisation(dm)
    wrapped = ExportedModel(
        net,
        dm.task,
        run.calibrator,
        mean,
        std,
        tuple(getattr(dm, "target_stats", None) or (0.0, 1.0)),
    ).eval()

    normalised, _ = _inputs(dm, cfg.split)
    if not isinstance(normalised, torch.Tensor):
        raise ConfigError(
            f"net {type(net).__name__} reads {type(normalised).__name__} batches; export "
            "handles nets whose input is one tensor"
        )
    raw = normalised * std + mean if mean is not None and std is not None else normalised
    output = Path(cfg.output) if cfg.output else run.run_dir / "export" / FORMATS[cfg.format]
    sidecar_path = output.with_name("export.json")
    for path in (output, sidecar_path):
        if path.exists():
            raise ConfigError(
                f"output: {path} exists; choose another path (nothing is overwritten)"
            )
    output.parent.mkdir(parents=True, exist_ok=True)
    example = raw[:2]
    program: bytes | None = None  # a .pt2's bytes, written below
    try:
        if cfg.format == "onnx":
            _to_onnx(wrapped, example, output, int(cfg.opset))
        elif cfg.format == "pt2":
            program = _to_pt2(wrapped, example)
        else:
            # Our own parity check below compares outputs; the tracer's self-check is stricter
            # than that about attention's fast path, which gives the same numbers.
            torch.jit.save(torch.jit.trace(wrapped, example, check_trace=False), str(output))
    except Exception as err:  # exporters raise many kinds; name the net and the first line
        output.unlink(missing_ok=True)
        first = _first_line(err)
        raise ConfigError(
            f"net {type(net).__name__} cannot be exported to {cfg.format}: {first}"
        ) from err
    if program is not None:
        write_new(output, program)  # written whole, never over a file that appeared meanwhile
    runtime, call = _runtime(cfg.format, output, program)

    with torch.no_grad():
        expected = torch.cat([wrapped(b) for b in raw.split(256)]).numpy()
    try:
        got = np.concatenate([call(b.numpy()) for b in raw.split(256)])
    except Exception as err:  # a runtime refusing the file (e.g. a batch axis fixed at export)
        raise ConfigError(
            f"{output}: {runtime} cannot run the exported {type(net).__name__} on batches of "
            f"{cfg.split}: {_first_line(err)}"
        ) from err
    # Absolute on probabilities; relative for values above 1 (regression targets).
    diff = float((np.abs(got - expected) / np.maximum(1.0, np.abs(expected))).max())
    samples = raw[: int(cfg.latency_samples)]
    report = {
        "format": cfg.format,
        "file": str(output),
        "runtime": runtime,
        "split": cfg.split,
        "samples": len(raw),
        "max_abs_diff": diff,
        "tolerance": float(cfg.tolerance),
        "latency_ms": {
            "pytorch": _latency(lambda x: wrapped(torch.from_numpy(x)), samples),
            "exported": _latency(call, samples),
        },
    }
    sidecar = {
        "checkpoint": str(run.checkpoint),
        "task": dm.task,
        "input_shape": [int(d) for d in dm.input_shape],
        "input_dtype": str(raw.dtype).removeprefix("torch."),
        "batch_axis": 0,
        "output": "calibrated class probabilities (B, K)"
        if dm.task == "classification"
        else "predictions in the target's units (B, 1)",
        "class_names": getattr(dm, "class_names", None),
        "calibrated": run.calibrator is not None,
        "normalisation": "inside the model: (x - mean) / std"
        if mean is not None
        else "none inside the model: give inputs as the DataModule's loaders do",
        "mean": mean.tolist() if mean is not None else None,
        "std": std.tolist() if std is not None else None,
        "opset": int(cfg.opset) if cfg.format == "onnx" else None,
        "parity": report,
    }
    write_new(sidecar_path, json.dumps(sidecar, indent=2))
    if diff > cfg.tolerance:
        raise ConfigError(
            f"{output}: outputs differ from PyTorch by up to {diff:.3g} on {cfg.split}, more "
            f"than tolerance={cfg.tolerance:g}; the file is kept for inspection"
        )
    return report


def _first_line(err: BaseException) -> str:
    text = ANSI.sub("", str(err)).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _inputs(dm: Any, split: str) -> tuple[Any, Any]:
    xs, ys = [], []
    for batch in split_loader(dm, split):
        x, y = batch[0], batch[1]
        if not isinstance(x, torch.Tensor):
            return x, y
        xs.append(x.cpu())
        ys.append(y.cpu())
    return torch.cat(xs), torch.cat(ys)


def _to_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamic_shapes=({0: batch},),
        opset_version=opset,
        dynamo=True,
        verbose=False,
    )


def _to_pt2(model: nn.Module, example: torch.Tensor) -> bytes:
    """torch.export's program with a dynamic batch axis: the bytes of a ``.pt2`` file."""
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},), strict=False)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _runtime(
    fmt: str, path: Path, written: bytes | None = None
) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """The runtime that serves the exported file, as a function of a numpy batch: the file
    as serialised, never the model in memory. A ``.pt2`` is read from the bytes this process
    wrote, not from the path: ``torch.export.load`` unpickles, so it reads no file that another
    process could have put there meanwhile."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return "onnxruntime", lambda x: np.asarray(session.run(None, {name: x})[0])
    if fmt == "pt2":
        assert written is not None
        module = torch.export.load(io.BytesIO(written)).module()
        runtime = "torch.export"
    else:
        module = torch.jit.load(str(path)).eval()
        runtime = "torchscript"

    def call(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return runtime, call


def _latency(call: Callable[[Any], Any], samples: torch.Tensor) -> float:
    """Median milliseconds of one-sample calls."""
    times = []
    with torch.no_grad():
        for x in samples.split(1):
            array = x.numpy()
            start = time.perf_counter()
            call(array)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times) if times else float("nan")
