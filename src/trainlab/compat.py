"""Where trainlab meets Lightning's version (the minor it is tested with) and the one private
Hydra name it builds on.

trainlab uses Lightning's public API only. Any private Lightning name (``trainer._...``, loop
internals) the project ever needs goes here, with a comment saying why, so that an upgrade has
one file to check; ``tests/test_compat.py`` fails, naming the versions, when the installed
Lightning is outside the tested range that ``pyproject.toml`` also pins.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

# Hydra's basic sweeper is public only as a config target under this private path; trainlab's
# grid sweeper (trainlab/sweeps/grid.py) subclasses it.
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper as BasicSweeper
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


# torchmetrics keeps how often a metric was updated in a private counter; compute() warns
# when it is 0, and a synced mean weighs by it. Its states are public (``metric_state``).
SUMMED = {"sum", "cat"}  # reductions whose states add up across ranks


def running_metric_state(metric: Any) -> dict[str, Any] | None:
    """A metric's accumulated states, summed over the ranks (every rank calls this), with its
    update count; None when a state is not reduced by sum or concatenation (it cannot be
    carried from rank 0 alone)."""
    reductions = getattr(metric, "_reductions", {})
    if any(
        getattr(fn, "__name__", str(fn)).replace("dim_zero_", "") not in SUMMED
        for fn in reductions.values()
    ):
        return None
    with metric.sync_context(should_unsync=True):
        states = {
            key: [v.detach().clone() for v in value]
            if isinstance(value, list)
            else value.detach().clone()
            for key, value in metric.metric_state.items()
        }
    return {"states": states, "count": int(metric.update_count)}


def check_running_metric_state(metric: Any, saved: Any) -> None:
    """Check that ``saved`` holds ``metric``'s own states (tensors, as the metric declares
    them) and an update count, and nothing else, before anything of it is set.

    Raises:
        ValueError: saying what does not fit.
    """
    states, count = (saved.get("states"), saved.get("count")) if isinstance(saved, dict) else (0, 0)
    declared = dict(metric.metric_state)  # the metric's own states, as reset() leaves them
    if not isinstance(states, dict) or set(states) != set(declared):
        raise ValueError(f"its states are not the metric's {sorted(declared)}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"its update count is not an integer >= 0: {count!r}")
    for key, value in states.items():
        if type(value) is not type(declared[key]):
            raise ValueError(
                f"its state {key!r} is a {type(value).__name__}, not a "
                f"{type(declared[key]).__name__}"
            )


def restore_running_metric_state(metric: Any, saved: dict[str, Any], holder: bool) -> None:
    """Put ``saved`` back into ``metric`` on the rank that holds it (``holder``); every other
    rank starts from zero, so that the ranks' states still add up to the saved ones. ``saved``
    has passed :func:`check_running_metric_state`."""
    metric.reset()
    if not holder:
        return
    for key, value in saved["states"].items():
        setattr(metric, key, value)
    metric._update_count = saved["count"]


class SigtermHold:
    """Holds a SIGTERM that comes during a validation inside ``fit`` until it has ended.

    Lightning stops a validation at the next batch on SIGTERM, and a checkpoint written then
    resumes past it: the resumed run never validates that epoch (no ``val/`` row, and early
    stopping and the best checkpoint miss it). Held, the stop comes after the validation, at the
    training loop's next check, where the state resumes exactly. The flag Lightning sets on the
    signal is private (``trainer._signal_connector.received_sigterm``): the hold clears it when a
    validation starts (a signal from the training batch before) and sets it again at the end.
    """

    def __init__(self) -> None:
        self._before = self._during = False
        self._handler: Any = None

    def start(self, trainer: Any) -> None:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread; Lightning's stay
        connector = trainer._signal_connector  # private: see above
        self._before, connector.received_sigterm = bool(connector.received_sigterm), False
        self._during = False
        self._handler = signal.signal(signal.SIGTERM, self._hold)

    def _hold(self, signum: int, frame: Any) -> None:
        log.info("SIGTERM during validation: stopping when it has ended")
        self._during = True

    def end(self, trainer: Any) -> None:
        import signal

        if self._handler is None:
            return
        handler, self._handler = self._handler, None
        signal.signal(signal.SIGTERM, handler)
        if self._during and callable(handler):
            handler(signal.SIGTERM, None)  # Lightning's, as if the signal came now
        if self._before or self._during:
            trainer._signal_connector.received_sigterm = True  # private: see above


@contextmanager
def lightning_says_what_is_missing(model: Any) -> Iterator[None]:
    """Lightning's own checks of a model (a missing ``training_step``, ``test_step`` or
    ``configure_optimizers``) as a :class:`ConfigError` naming the model."""
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    from trainlab.errors import ConfigError

    try:
        yield
    except MisconfigurationException as err:
        raise ConfigError(f"model {type(model).__name__}: {err}") from err
