"""Optional dependencies, installed as extras: ``pip install 'trainlab[graph]'``.

The core (Lightning, Hydra, torch, torchmetrics, W&B, the Optuna sweeper, submitit,
scikit-learn, pandas, matplotlib) trains every non-graph net on every non-graph dataset. What
needs more names its extra in one line when it is missing (:func:`require`).
"""

from __future__ import annotations

import importlib
from typing import Any

from trainlab.errors import ConfigError

EXTRAS: dict[str, tuple[str, ...]] = {
    "graph": ("torch_geometric", "networkx"),  # graph nets and graph data
    "export": ("onnx", "onnxscript", "onnxruntime"),  # export format=onnx
    "postgres": ("psycopg2",),  # an Optuna study in PostgreSQL
    "mlflow": ("mlflow",),  # logger=mlflow
}
LOGGERS = {"lightning.pytorch.loggers.MLFlowLogger": "mlflow"}  # a logger's target -> its extra


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    absent = []
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            absent.append(module)
    return absent


def require_for_loggers(loggers: Any) -> None:
    """:func:`require` the extra of each configured logger that needs one (``logger.<key>``)."""
    for key, node in (loggers or {}).items():
        target = node.get("_target_") if node is not None else None
        if (extra := LOGGERS.get(str(target))) is not None:
            require(extra, f"logger.{key} ({target})")


def require(extra: str, what: str) -> None:
    """Fail, naming ``extra`` and how to install it, when one of its modules is missing.

    Raises:
        ConfigError: ``what`` needs ``extra`` and it is not installed.
    """
    if absent := missing(extra):
        raise ConfigError(
            f"{what} needs the '{extra}' extra ({', '.join(absent)} not installed): "
            f"pip install 'trainlab[{extra}]'"
        )
