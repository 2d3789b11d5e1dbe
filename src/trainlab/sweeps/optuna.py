"""One Optuna study shared by many sweep processes, with one trial budget for all of them.

Hydra's Optuna sweeper runs ``n_trials`` in each process that starts it; started on three nodes
against one database, a study of 20 trials would run 60. This sweeper (the Hydra plugin
``hydra_plugins.trainlab_sweeper.shared_study.SharedStudySweeper``) reads
``n_trials`` as the study's budget instead: before asking for trials, a worker takes a lock on
the study (a file lock next to a SQLite database, an advisory lock in PostgreSQL), counts the
trials the study already has, and asks only for what is left. Workers started together, or
again after all were stopped, share the budget exactly.

A job that raised (its objective is NaN) is told to the study as failed, and a run stopped by
the divergence guard as pruned; the search goes on either way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from omegaconf import OmegaConf

from trainlab.extras import require
from trainlab.trust.secrets import redact

log = logging.getLogger(__name__)


class SharedStudyImpl(OptunaSweeperImpl):
    """The sweep loop: ask under the study's lock for what is left of the budget, launch,
    tell each trial's outcome."""

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        assert self.launcher is not None and self.config is not None
        self._process_searchspace_config()
        params = [*self._parse_sweeper_params_config(), *arguments]
        space, fixed = create_params_from_overrides(params)
        distributions = {**(self.search_space_distributions or {}), **space}
        for name in fixed:
            distributions.pop(name, None)
        settings = Settings.from_config(self.config.get("shared_study"))
        # Under the lock: workers starting together would race to create the tables.
        with study_lock(self.storage, str(self.study_name), settings.lock_timeout_seconds):
            storage = settings.storage(self.storage)
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=self.sampler,
                directions=self._get_directions(),
                load_if_exists=True,
            )
        log.info(
            "study %r in %s: a budget of %d trials",
            study.study_name,
            redact(str(self.storage)),
            self.n_trials,
        )
        ran = 0
        while True:
            with study_lock(self.storage, study.study_name, settings.lock_timeout_seconds):
                left = self.n_trials - counted_trials(study)
                if left <= 0:
                    break
                trials = [study.ask() for _ in range(min(self.n_jobs, left))]
            overrides = self._configure_trials(trials, distributions, fixed)
            with heartbeats(study, trials, settings.heartbeat_seconds):
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            ran += len(returns)
            for trial, result in zip(trials, returns, strict=True):
                state, value = outcome(result)
                try:
                    if state == "complete":
                        study.tell(trial, value)
                    else:
                        study.tell(trial, state=getattr(optuna.trial.TrialState, state.upper()))
                except (RuntimeError, ValueError) as err:  # failed as stale meanwhile
                    log.warning("trial %d could not be told its outcome: %s", trial.number, err)
                    continue
                if state != "complete":
                    log.warning(
                        "trial %d %s",
                        trial.number,
                        "failed" if state == "fail" else "pruned (diverged)",
                    )
        log.info("this worker ran %d of the study's %d trials", ran, self.n_trials)
        self._save_results(study)

    def _save_results(self, study: Any) -> None:
        import optuna

        done = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE
        ]
        results: dict[str, Any] = {
            "name": "optuna",
            "study": study.study_name,
            "trials": len(study.trials),
        }
        if done and len(study.directions) == 1:
            best = study.best_trial
            results |= {"best_params": best.params, "best_value": best.value}
        assert self.config is not None
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")


STALE_KEY = "trainlab:stale_trials"  # a study attribute: trials failed because their worker died


@dataclass(frozen=True)
class Settings:
    """``shared_study`` in the config (``hparams_search=optuna`` sets it): a worker records a
    heartbeat for each trial it runs every ``heartbeat_seconds``; a RUNNING trial silent for
    ``grace_seconds`` (its worker was killed) is failed by the next worker that takes the lock,
    and counts no more against the budget; waiting for the study's lock longer than
    ``lock_timeout_seconds`` is an error naming the lock."""

    heartbeat_seconds: int = 10
    grace_seconds: int = 60
    lock_timeout_seconds: float = 600.0

    @classmethod
    def from_config(cls, node: Any) -> Settings:
        values = dict(node or {})
        if unknown := sorted(set(values) - {f.name for f in fields(cls)}):
            raise ValueError(f"shared_study: unknown key(s) {unknown}")
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"shared_study.{name} must be a positive number, got {value!r}")
        return cls(**values)

    def storage(self, url: Any) -> Any:
        """The study's storage: a database with heartbeats, or None (in memory)."""
        if not url:
            return None
        import optuna  # a PostgreSQL URL's extra was required by study_lock, taken first

        with warnings.catch_warnings():  # Optuna 2.x calls heartbeats experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                str(url),
                heartbeat_interval=int(self.heartbeat_seconds),
                grace_period=int(self.grace_seconds),
                failed_trial_callback=_note_stale,
            )


def _note_stale(study: Any, trial: Any) -> None:
    """Optuna failed ``trial`` as stale: remember it, so that it leaves the budget."""
    stale = {*study.system_attrs.get(STALE_KEY, []), trial.number}
    study.set_system_attr(STALE_KEY, sorted(stale))
    log.warning("trial %d failed: its worker stopped sending heartbeats", trial.number)


def counted_trials(study: Any) -> int:
    """Trials that count against the budget: all but those whose worker died (failed here as
    stale first). Call under the study's lock."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import fail_stale_trials

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        fail_stale_trials(study)
    return len(study.get_trials(deepcopy=False)) - len(study.system_attrs.get(STALE_KEY, []))


@contextlib.contextmanager
def heartbeats(study: Any, trials: list[Any], every: float) -> Iterator[None]:
    """Record a heartbeat for each of ``trials`` now and every ``every`` seconds until the
    block ends (a database study only)."""
    storage = study._storage  # Optuna's: the ask-and-tell API records no heartbeats itself
    if not storage.is_heartbeat_enabled():
        yield
        return
    done = threading.Event()

    def beat() -> None:
        while True:
            for trial in trials:
                storage.record_heartbeat(trial._trial_id)
            if done.wait(every):
                return

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    try:
        yield
    finally:
        done.set()
        beater.join()


def outcome(result: JobReturn) -> tuple[str, float]:
    """``("complete", value)``, ``("fail", nan)`` for a job that raised or returned no number,
    or ``("pruned", nan)`` for a run the divergence guard stopped."""
    try:
        value = float(result.return_value)
    except Exception:  # the job raised: JobReturn re-raises it here
        return "fail", math.nan
    if not math.isfinite(value):
        return "fail", math.nan
    metrics = Path(str(result.working_dir or "")) / "metrics.json"
    output_dir = (
        OmegaConf.select(result.hydra_cfg, "hydra.runtime.output_dir") if result.hydra_cfg else None
    )
    if output_dir:
        metrics = Path(str(output_dir)) / "metrics.json"
    with contextlib.suppress(OSError, ValueError):
        if str(json.loads(metrics.read_text()).get("stop_reason", "")).startswith("diverged"):
            return "pruned", math.nan
    return "complete", value


def _wait(take: Any, what: str, timeout: float) -> None:
    """Call ``take()`` until it returns True, for at most ``timeout`` seconds.

    Raises:
        TimeoutError: naming the lock.
    """
    deadline = time.monotonic() + timeout
    while not take():
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"waited {timeout:g} s for {what}; another worker holds it (or died holding "
                "it: a file lock is freed when its process ends, a PostgreSQL lock when its "
                "connection does). Raise shared_study.lock_timeout_seconds to wait longer"
            )
        time.sleep(0.2)


@contextlib.contextmanager
def study_lock(storage: Any, study_name: str, timeout: float = 600.0) -> Iterator[None]:
    """Hold the study's lock: a file lock beside a SQLite database, a PostgreSQL advisory lock,
    nothing for an in-memory study (one process); waiting at most ``timeout`` seconds."""
    url = str(storage or "")
    if url.startswith("sqlite:///"):
        lock_path = Path(url.removeprefix("sqlite:///") + ".lock")
        with lock_path.open("a") as handle:

            def take() -> bool:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            _wait(take, f"the study's lock {lock_path}", timeout)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif url.startswith("postgresql"):
        require("postgres", "a PostgreSQL storage")
        import sqlalchemy

        key = zlib.crc32(study_name.encode())  # one advisory lock per study
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as connection:
            query = sqlalchemy.text("SELECT pg_try_advisory_lock(:k)")
            _wait(
                lambda: bool(connection.execute(query, {"k": key}).scalar()),
                f"the study's lock (PostgreSQL advisory lock {key} for study {study_name!r})",
                timeout,
            )
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        engine.dispose()
    elif url:
        raise ValueError(
            f"hydra.sweeper.storage {redact(url)!r}: a shared study needs sqlite:/// or "
            "postgresql:// (or null for one process)"
        )
    else:
        yield
