"""Export a trained run: ``python -m trainlab.export run_dir=<run> format=onnx|torchscript``.

Writes the model of the run's best checkpoint, with the fitted calibrator and the data's input
normalisation folded in, and a sidecar ``export.json``; then runs the exported file on a split
(onnxruntime for ONNX) and fails if it differs from PyTorch by more than ``tolerance``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from trainlab.runtime.cli import reject_bad_config, start
from trainlab.runtime.configs import HYDRA
from trainlab.trust.secrets import protect_job


def job(cfg: DictConfig) -> None:
    protect_job()  # a launcher's job runs in a process of its own
    from trainlab.runtime.export import export

    report = reject_bad_config(lambda: export(cfg), cfg.paths.output_dir)
    print(
        f"exported {report['format']} to {report['file']}\n"
        f"parity on {report['split']} ({report['samples']} samples): max |difference| "
        f"{report['max_abs_diff']:.3g} (tolerance {report['tolerance']:g})\n"
        f"latency per sample: pytorch {report['latency_ms']['pytorch']:.3f} ms, "
        f"{report['runtime']} {report['latency_ms']['exported']:.3f} ms"
    )


def main() -> None:
    start("export", hydra.main(**HYDRA, config_name="export")(job))


if __name__ == "__main__":
    main()
