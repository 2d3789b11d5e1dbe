"""Nothing run from a file: what trainlab may load from a checkpoint or a run directory.

- A checkpoint is read with ``torch.load(weights_only=True)`` everywhere, resuming included
  (trainlab passes ``weights_only=True`` to Lightning too). An explicit ``weights_only=True``
  holds whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says, and a file that would need to
  unpickle anything but tensors and plain values is refused with one line naming it.
- A run directory's ``config.yaml`` (eval, predict, export) builds only what a trained run of
  this project could have built: every ``_target_`` in the parts built again (the data, the
  net and the model) must be one that this project's ``conf/`` names, or one the user names on
  the command line (``trust_targets=[...]``). It is checked before anything is imported.
"""

from __future__ import annotations

import functools
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from trainlab.errors import ConfigError

# The oldest torch allowed (pyproject.toml agrees, tests/test_compat.py checks): from 2.6 on
# torch.load is weights-only by default, so loads inside Lightning that trainlab does not call
# itself (the LR finder's restore of the file it just wrote) are weights-only too.
MIN_TORCH = "2.6"


def load_checkpoint(path: str | Path, mmap: bool = False) -> Any:
    """``torch.load`` of a checkpoint: tensors and plain values only, on the CPU."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def check_checkpoint(path: str | Path, key: str = "ckpt_path", resume: bool = False) -> Path:
    """Check that ``path`` is a checkpoint trainlab can read (to resume from, with ``resume``),
    before anything is built or written.

    Raises:
        ConfigError: naming ``key`` and the file: missing, truncated or not a checkpoint,
            holding objects that only a full unpickling would build, or holding the weights
            alone where training is to resume.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{key}: {str(path)!r} is not a file")
    if not zipfile.is_zipfile(file):  # torch.save writes a zip archive; a cut-off one is not
        raise ConfigError(
            f"{key}: {file} is not a readable checkpoint (truncated, or not written by torch.save)"
        )
    try:  # mmap: the tensors are not read
        with warnings.catch_warnings():  # torch's note on the pickle protocol: ours says more
            warnings.simplefilter("ignore", UserWarning)
            state = load_checkpoint(file, mmap=True)
    except pickle.UnpicklingError as err:
        raise ConfigError(
            f"{key}: {file} holds objects other than weights and plain values "
            f"({_unpickler_reason(err)}); trainlab never unpickles them, as that could run "
            "code the file carries"
        ) from err
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


def _unpickler_reason(err: Exception) -> str:
    """What torch's weights-only unpickler refused, without its paragraphs of advice."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", str(err)) if p.strip()]
    advice = ("Weights only load failed", "Check the documentation", "Please file an issue")
    useful = [p for p in paragraphs if not p.startswith(advice)]
    return " ".join(" ".join(useful).split()) or type(err).__name__


def _targets(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every ``(key, _target_)`` in a parsed config."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield where or "<root>", str(node["_target_"])
        for key, value in node.items():
            yield from _targets(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _targets(value, f"{where}[{i}]")


def project_targets(dirs: Iterable[Path]) -> frozenset[str]:
    """The ``_target_`` of every node in the config directories ``dirs`` (a job's:
    :func:`trainlab.runtime.configs.config_dirs`, a project's ``conf/`` and trainlab's)."""
    return _targets_in(tuple(dirs))


@functools.lru_cache(maxsize=4)
def _targets_in(dirs: tuple[Path, ...]) -> frozenset[str]:
    found: set[str] = set()
    for root in dirs:
        for path in root.rglob("*.yaml"):
            found.update(t for _, t in _targets(yaml.safe_load(path.read_text())))
    return frozenset(found)


BUILT = ("data", "net", "model")  # what eval, predict and export build from a run's config


def check_buildable(
    config: Any, source: Path, dirs: Iterable[Path], trusted: Iterable[str] = ()
) -> None:
    """Refuse a run's config that asks for a ``_target_`` no config of this project names, in
    the parts that are built from it (:data:`BUILT`; the rest, such as the callbacks and
    loggers the run trained with, is never built again).

    Args:
        config: the run's config, parsed (plain dicts and lists, interpolations resolved).
        source: the file it came from, for the message.
        dirs: the config directories whose targets may be built (the job's).
        trusted: further targets the user trusts (``trust_targets=[...]``).

    Raises:
        ConfigError: naming the key, the target and how to trust it.
    """
    dirs = tuple(dirs)
    allowed = project_targets(dirs) | set(trusted)
    built = {k: v for k, v in config.items() if k in BUILT} if isinstance(config, dict) else {}
    for key, target in _targets(built):
        if target not in allowed:
            raise ConfigError(
                f"{source}: {key}._target_ is {target!r}, which no config in "
                f"{' or '.join(map(str, dirs))} "
                "names; a run directory's config builds only what this project's configs "
                f"build. If you trust this run, add trust_targets=[{target}]"
            )
