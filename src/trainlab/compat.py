"""Where trainlab meets Lightning's version: the minor it is tested with.

trainlab uses Lightning's public API only. Any private Lightning name (``trainer._...``, loop
internals) the project ever needs goes here, with a comment saying why, so that an upgrade has
one file to check; ``tests/test_compat.py`` fails, naming the versions, when the installed
Lightning is outside the tested range that ``pyproject.toml`` also pins.
"""

from __future__ import annotations

import logging
from importlib.metadata import version

from packaging.specifiers import SpecifierSet

log = logging.getLogger(__name__)

TESTED_LIGHTNING = ">=2.6,<2.7"


def lightning_is_tested(installed: str | None = None) -> bool:
    """Whether ``installed`` (default: the installed ``lightning``) is in the tested range."""
    return (installed or version("lightning")) in SpecifierSet(TESTED_LIGHTNING)


def warn_if_untested() -> None:
    """Say so once in the log when the installed Lightning is outside the tested range."""
    if not lightning_is_tested():
        log.warning(
            "lightning %s is outside the range trainlab is tested with (%s); runs may differ",
            version("lightning"),
            TESTED_LIGHTNING,
        )


def load_pending_loader_states(trainer: object) -> None:
    """Hand a resumed run's saved train-loader states to its loaders.

    Lightning 2.6 loads them when it sets up the train loader, which it does once. A
    ``configure_optimizers`` that reads ``trainer.estimated_stepping_batches`` (ours does, for
    the schedules) sets the loader up *before* the checkpoint's loop state is restored, so the
    states would never reach the loader and a run resumed mid-epoch would start the epoch over.
    Called from ``on_train_start``, after the restore; does nothing where nothing is pending.
    """
    fit_loop = getattr(trainer, "fit_loop", None)
    if fit_loop is not None and getattr(fit_loop, "_combined_loader_states_to_load", None):
        fit_loop._load_combined_loader_states()  # private: see above
