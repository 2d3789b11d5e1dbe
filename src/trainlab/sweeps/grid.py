"""Hydra's basic sweeper (every combination of the comma lists), composing each job once.

Hydra's :class:`~hydra._internal.core_plugins.basic_sweeper.BasicSweeper` composes every job's
config before it launches the batch (so a bad override fails before any job runs), and its
launcher composes each one again: two full compositions a job, 0.2 s each for the default run.
:class:`ComposedOnceSweeper` (``hydra/sweeper=grid``) hands the launcher, through
:class:`ComposeOnce`, the config that the check composed for the same master config and
overrides, and a sweep whose overrides do not compose leaves no directory behind. Everything
else is Hydra's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from trainlab.compat import BasicSweeper
from trainlab.trust.files import discard

KEPT = 64  # composed configs held for the launcher at most; beyond, it composes its own


class ComposeOnce:
    """A config loader that keeps what it composes while the sweeper checks a batch
    (:meth:`checking`), and hands each kept config to the next request for the same master
    config and overrides: the launcher's, once per job. Jobs with the same overrides each get
    a config of their own, in order; a request with nothing kept composes anew, as Hydra's does.

    Composition reads only the master config, the overrides and the config files, so a kept
    config is the one a second composition would make unless a config file changed between
    the check and the launch of the same batch; then the job runs what was checked.
    """

    def __init__(self, loader: ConfigLoader) -> None:
        self.loader = loader
        self.kept: dict[tuple[int, tuple[str, ...]], list[DictConfig]] = {}
        self.recording = False

    @contextlib.contextmanager
    def checking(self) -> Iterator[None]:
        """Keep the configs composed within the block (at most :data:`KEPT`)."""
        self.recording = True
        try:
            yield
        finally:
            self.recording = False

    def load_sweep_config(
        self, master_config: DictConfig, sweep_overrides: list[str]
    ) -> DictConfig:
        key = (id(master_config), tuple(sweep_overrides))
        if not self.recording and (queue := self.kept.get(key)):
            found = queue.pop(0)
            if not queue:
                del self.kept[key]
            return found
        composed = self.loader.load_sweep_config(master_config, list(sweep_overrides))
        if self.recording and sum(map(len, self.kept.values())) < KEPT:
            self.kept.setdefault(key, []).append(composed)
        return composed

    def __getattr__(self, name: str) -> Any:
        # Everything else is the wrapped loader's. Dunder names are not forwarded: pickle
        # looks some up on an instance whose __dict__ is still empty.
        if name.startswith("__") or "loader" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["loader"], name)

    def __getstate__(self) -> dict[str, Any]:
        return {"loader": self.loader, "kept": {}, "recording": False}  # a worker composes


class ComposedOnceSweeper(BasicSweeper):
    """:class:`BasicSweeper` whose batch check and launcher share each job's composition."""

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.composer = ComposeOnce(hydra_context.config_loader)
        shared = HydraContext(
            config_loader=self.composer,  # type: ignore[arg-type]
            callbacks=hydra_context.callbacks,
        )
        super().setup(hydra_context=shared, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        """Hydra's sweep; a sweep stopped before its first job (an override that does not
        compose) leaves no sweep directory behind."""
        self.launching = False
        try:
            return super().sweep(arguments)
        except BaseException:
            if not self.launching and self.config is not None:
                discard(str(self.config.hydra.sweep.dir))
            raise

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        with self.composer.checking():
            super().validate_batch_is_legal(batch)
        self.launching = True  # the batch composed: its jobs run next
