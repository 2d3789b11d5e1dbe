"""trainlab's Optuna sweeper: one study on current Optuna, asked and told by any number of sweep
processes with one trial budget between them, its trials pruned as they train.

The Hydra plugin (``hydra_plugins.trainlab_sweeper``) registers it as ``hydra/sweeper=optuna``
with the config surface of ``hydra-optuna-sweeper`` (``params`` with ``interval``, ``range``,
``choice`` and ``tag(log, ...)``, ``sampler``, ``direction``, ``n_trials``, ``n_jobs``,
``storage``, ``study_name``, ``search_space``, ``custom_search_space``, ``max_failure_rate``),
so configs written for that plugin run unchanged; it adds ``pruner``.

- **One budget.** ``n_trials`` is the study's budget, not each process's: before asking, a
  worker takes the study's lock (a file lock beside a journal file or a SQLite database, an
  advisory lock in PostgreSQL), counts the trials the study has, and asks only for what is left.
- **Storage.** ``storage: null`` keeps the study in ``optuna.journal`` in the sweep directory
  (Optuna's JournalStorage: no server; every job of the sweep, on any launcher, reaches it). A
  file path shares a journal between workers on a shared file system; ``sqlite:///`` and
  ``postgresql://`` URLs are Optuna's RDBStorage.
- **Workers that die.** Each running trial has a heartbeat (Optuna's own in a database; a system
  attribute in a journal, which has none); a trial silent for ``grace_seconds`` is failed by the
  next worker and leaves the budget.
- **Outcomes.** A job that raised is told as failed, one the divergence guard stopped or the
  pruner pruned as pruned; the search goes on, unless more of a batch failed than
  ``max_failure_rate`` allows.

The job learns its trial from ``hydra.job.env_set`` (:data:`TRIAL_ENV`) and finds the study
through its own ``hydra.sweeper`` config (:mod:`trainlab.sweeps.pruning`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import math
import threading
import time
import warnings
import zlib
from collections.abc import Iterator, Mapping, MutableSequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from trainlab.extras import require
from trainlab.trust.run_dir import RunDir
from trainlab.trust.secrets import redact

log = logging.getLogger(__name__)

TRIAL_ENV = "TRAINLAB_OPTUNA_TRIAL"  # the job's trial number, set through hydra.job.env_set
JOURNAL = "optuna.journal"  # the study of a sweep with storage: null, in its sweep directory
HEARTBEAT_KEY = "trainlab:heartbeat"  # a journal trial's last heartbeat (seconds since epoch)
STALE_KEY = (
    "trainlab:stale_trials"  # a study user attribute: trials failed because their worker died
)
RDB_SCHEMES = ("sqlite:///", "postgresql")


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


def is_journal(spec: str) -> bool:
    """A storage given as a file path (Optuna's command line reads one as a journal file)."""
    return "://" not in spec


def open_storage(spec: str, settings: Settings | None = None) -> Any:
    """Optuna's storage for ``spec``: a JournalStorage for a file path, an RDBStorage (with
    Optuna's heartbeat when ``settings`` are given) for a database URL.

    Raises:
        ValueError: any other URL, naming the kinds accepted.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if is_journal(spec):
        path = Path(spec).expanduser().absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if not spec.startswith(RDB_SCHEMES):
        raise ValueError(
            f"hydra.sweeper.storage {redact(spec)!r}: give a journal file path (shared by "
            "workers on one file system), sqlite:///<file> or postgresql://..., or null (a "
            "journal in the sweep directory)"
        )
    if spec.startswith("postgresql"):
        require("postgres", "a PostgreSQL storage")
    beat: dict[str, Any] = {}
    if settings is not None:
        beat = {
            "heartbeat_interval": int(settings.heartbeat_seconds),
            "grace_period": int(settings.grace_seconds),
            "heartbeat_stale_trial_callback": _note_stale,
        }
    with warnings.catch_warnings():  # Optuna calls its heartbeat experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(spec, **beat)


def _note_stale(study: Any, trial: Any) -> None:
    """``trial`` was failed because its worker stopped sending heartbeats: remember it, so
    that it leaves the budget."""
    stale = {*study.user_attrs.get(STALE_KEY, []), trial.number}
    study.set_user_attr(STALE_KEY, sorted(stale))
    log.warning("trial %d failed: its worker stopped sending heartbeats", trial.number)


def trial_id(storage: Any, study_name: str, number: int) -> int:
    """The storage's id of trial ``number`` of the study (Optuna's public storage calls)."""
    return int(
        storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(study_name), number
        )
    )


def record_heartbeat(storage: Any, study_name: str, number: int) -> None:
    import optuna

    trial = trial_id(storage, study_name, number)
    if isinstance(storage, optuna.storages.RDBStorage):
        storage.record_heartbeat(trial)
    else:
        storage.set_trial_system_attr(trial, HEARTBEAT_KEY, time.time())


def fail_stale_trials(study: Any, storage: Any, grace_seconds: float) -> None:
    """Fail the RUNNING trials whose worker stopped sending heartbeats: Optuna's own check for
    a database; for a journal, trials whose last heartbeat is older than ``grace_seconds``."""
    import optuna
    from optuna.trial import TrialState

    if isinstance(storage, optuna.storages.RDBStorage):
        optuna.storages.fail_stale_trials(study)  # calls _note_stale for each
        return
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        if now - float(trial.system_attrs.get(HEARTBEAT_KEY, started)) <= grace_seconds:
            continue
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            if storage.set_trial_state_values(
                trial_id(storage, study.study_name, trial.number), TrialState.FAIL
            ):
                _note_stale(study, trial)


def counted_trials(study: Any, storage: Any, settings: Settings) -> int:
    """Trials that count against the budget: all but those whose worker died (failed here as
    stale first). Call under the study's lock."""
    fail_stale_trials(study, storage, settings.grace_seconds)
    return len(study.get_trials(deepcopy=False)) - len(study.user_attrs.get(STALE_KEY, []))


@contextlib.contextmanager
def heartbeats(storage: Any, study_name: str, numbers: list[int], every: float) -> Iterator[None]:
    """Record a heartbeat for each of trials ``numbers`` now and every ``every`` seconds until
    the block ends."""
    import optuna

    done = threading.Event()

    def beat() -> None:
        while True:
            for number in numbers:
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    record_heartbeat(storage, study_name, number)  # unless failed meanwhile
            if done.wait(every):
                return

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    try:
        yield
    finally:
        done.set()
        beater.join()


def outcome(result: JobReturn) -> tuple[str, Any]:
    """``("complete", value)``, ``("fail", nan)`` for a job that raised or returned no number,
    or ``("pruned", nan)`` for a run the pruner or the divergence guard stopped."""
    try:
        value = result.return_value
        values = [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)]
    except Exception:  # the job raised: JobReturn re-raises it here
        return "fail", math.nan
    if not all(math.isfinite(v) for v in values):
        return "fail", math.nan
    output_dir = (
        OmegaConf.select(result.hydra_cfg, "hydra.runtime.output_dir") if result.hydra_cfg else None
    )
    metrics = RunDir(Path(str(output_dir or result.working_dir or ""))).metrics
    with contextlib.suppress(OSError, ValueError):
        reason = str(json.loads(metrics.read_text()).get("stop_reason") or "")
        if reason.startswith(("diverged", "pruned")):
            return "pruned", math.nan
    return "complete", values[0] if len(values) == 1 else values


def distributions(arguments: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Hydra sweep overrides as Optuna distributions (as hydra-optuna-sweeper reads them:
    ``choice`` and a shuffled ``range`` are categorical, ``range(a, b, s)`` is ``[a, b]`` in
    steps of ``s``, ``interval`` uniform, ``tag(log, interval(...))`` log-uniform; ints stay
    ints); the other overrides are fixed values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(arguments):
        name = override.get_key_element()
        if not override.is_sweep_override():
            fixed[name] = override.get_value_element_as_str()
            continue
        value: Any = override.value()
        if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
            choices: list[Any] = list(override.sweep_iterator(transformer=Transformer.encode))
            space[name] = CategoricalDistribution(choices)
        elif override.is_range_sweep():
            if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
                space[name] = FloatDistribution(value.start, value.stop, step=value.step)
            else:
                space[name] = IntDistribution(
                    int(value.start), int(value.stop), step=int(value.step)
                )
        elif override.is_interval_sweep():
            log_scale = "log" in value.tags
            if isinstance(value.start, int) and isinstance(value.end, int):
                space[name] = IntDistribution(value.start, value.end, log=log_scale)
            else:
                space[name] = FloatDistribution(value.start, value.end, log=log_scale)
        else:
            raise ValueError(f"hydra.sweeper.params: {override.input_line!r} is no Optuna space")
    return space, fixed


def configured_distribution(name: str, node: Mapping[str, Any]) -> Any:
    """A distribution from the older ``search_space`` form: ``{type: float, low, high, log,
    step}``, ``{type: int, ...}`` or ``{type: categorical, choices}``."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    kind = str(node.get("type"))
    if kind == "categorical":
        return CategoricalDistribution(list(node["choices"]))
    log_scale, step = bool(node.get("log", False)), node.get("step")
    if kind == "int":
        return IntDistribution(
            int(node["low"]), int(node["high"]), log=log_scale, step=int(step or 1)
        )
    if kind == "float":
        return FloatDistribution(float(node["low"]), float(node["high"]), log=log_scale, step=step)
    raise ValueError(
        f"hydra.sweeper.search_space.{name}.type must be int, float or categorical, got {kind!r}"
    )


def grid(space: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Each distribution's points, for Optuna's GridSampler."""
    from optuna.distributions import CategoricalDistribution

    points: dict[str, list[Any]] = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            points[name] = list(dist.choices)
        elif getattr(dist, "step", None) is not None and not getattr(dist, "log", False):
            count = round((dist.high - dist.low) / dist.step) + 1
            points[name] = [dist.low + i * dist.step for i in range(count)]
        else:
            raise ValueError(f"GridSampler needs discrete values: {name} is {dist}")
    return points


def check_pruning(metric: Any, pruner: Any) -> None:
    """A pruner compares trials on the optimised metric after every validation: refuse one
    that is not a validation metric, before any trial runs.

    Raises:
        ValueError: naming the metric.
    """
    if pruner and not str(metric).startswith("val/"):
        raise ValueError(
            f"hydra.sweeper.pruner: optimized_metric is {str(metric)!r}; the pruner compares "
            "trials on it after every validation, so it must be a val/ metric (or set "
            "hydra/sweeper/pruner=none)"
        )


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class StudySweeper(Sweeper):
    """The sweep loop: ask under the study's lock for what is left of the budget, launch the
    trials through Hydra's launcher, tell each trial's outcome."""

    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: Any,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float = 1.0,
        search_space: Any = None,
        custom_search_space: str | None = None,
        params: Any = None,
        pruner: Any = None,
    ) -> None:
        if not 0.0 <= float(max_failure_rate) <= 1.0:
            raise ValueError(
                f"hydra.sweeper.max_failure_rate must be in [0, 1], got {max_failure_rate}"
            )
        for name, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"hydra.sweeper.{name} must be a positive integer, got {value!r}")
        self.sampler = sampler
        self.direction = direction
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = float(max_failure_rate)
        self.search_space = search_space
        self.custom_search_space = custom_search_space
        self.params = params
        self.pruner = pruner
        self.job_idx = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def directions(self) -> list[Any]:
        given = self.direction if isinstance(self.direction, MutableSequence) else [self.direction]
        names = [str(getattr(d, "name", d)) for d in given]
        if bad := [n for n in names if n not in ("minimize", "maximize")]:
            raise ValueError(f"hydra.sweeper.direction: {bad} (valid: minimize, maximize)")
        return names

    def space(self, arguments: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
        space = {
            str(k): configured_distribution(str(k), v) for k, v in (self.search_space or {}).items()
        }
        given, fixed = distributions(
            [*(f"{k}={v}" for k, v in (self.params or {}).items()), *arguments]
        )
        space.update(given)
        for name in fixed:
            space.pop(name, None)
        return space, fixed

    def storage_spec(self) -> str:
        """The study's storage: the configured one, or a journal in the sweep directory."""
        assert self.config is not None
        if self.storage:
            spec = str(self.storage)
            return str(Path(spec).absolute()) if is_journal(spec) else spec
        return str(Path(str(self.config.hydra.sweep.dir)).absolute() / JOURNAL)

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        assert self.config is not None and self.launcher is not None, "setup() first"
        check_pruning(self.config.get("optimized_metric"), self.pruner)
        space, fixed = self.space(arguments)
        sampler, budget = self.sampler, self.n_trials
        if isinstance(sampler, functools.partial) and sampler.func is optuna.samplers.GridSampler:
            points = grid(space)
            sampler = sampler(points)
            budget = min(budget, math.prod(len(v) for v in points.values()))
        extend = None
        if self.custom_search_space:
            extend = instantiate({"_target_": self.custom_search_space, "_partial_": True})
        settings = Settings.from_config(self.config.get("shared_study"))
        spec = self.storage_spec()
        name = str(self.study_name or "trainlab")
        # Under the lock: workers starting together would race to create the tables.
        with study_lock(spec, name, settings.lock_timeout_seconds):
            storage = open_storage(spec, settings)
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                sampler=sampler,
                pruner=self.pruner or optuna.pruners.NopPruner(),
                directions=self.directions(),
                load_if_exists=True,
            )
        log.info(
            "study %r in %s: a budget of %d trials, pruner %s",
            name,
            redact(spec),
            budget,
            type(self.pruner).__name__ if self.pruner else "none",
        )
        ran = 0
        while True:
            with study_lock(spec, name, settings.lock_timeout_seconds):
                left = budget - counted_trials(study, storage, settings)
                if left <= 0:
                    break
                with warnings.catch_warnings():  # heartbeats are ours in ask-and-tell
                    warnings.filterwarnings("ignore", "Heartbeat of storage")
                    trials = [
                        study.ask(fixed_distributions=space) for _ in range(min(self.n_jobs, left))
                    ]
            overrides = [self._overrides(trial, fixed, extend, spec) for trial in trials]
            numbers = [t.number for t in trials]
            with heartbeats(storage, name, numbers, settings.heartbeat_seconds):
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            ran += len(returns)
            failed = sum(
                self._tell(study, trial, result) == "fail"
                for trial, result in zip(trials, returns, strict=True)
            )
            if failed > self.max_failure_rate * len(trials):
                log.error(
                    "%d of the %d trials of this batch failed, more than max_failure_rate=%g "
                    "allows: the sweep stops",
                    failed,
                    len(trials),
                    self.max_failure_rate,
                )
                break
        log.info("this worker ran %d of the study's %d trials", ran, budget)
        self._save_results(study)

    def _overrides(self, trial: Any, fixed: dict[str, str], extend: Any, spec: str) -> list[str]:
        for key, value in fixed.items():
            trial.set_user_attr(key, value)
        if extend is not None:
            extend(self.config, trial)
        if overlap := sorted(trial.params.keys() & fixed.keys()):
            raise ValueError(f"hydra.sweeper: {overlap} are both searched and fixed")
        found = [f"{k}={v}" for k, v in {**trial.params, **fixed}.items()]
        # The job finds its trial (trainlab.sweeps.pruning); hydra.* overrides stay out of
        # the run's name and its overrides.yaml.
        found.append(f"++hydra.job.env_set.{TRIAL_ENV}={trial.number}")
        if is_journal(spec):  # the job's own config then names the study's file
            found.append(f"hydra.sweeper.storage={_quoted(spec)}")
        return found

    def _tell(self, study: Any, trial: Any, result: JobReturn) -> str:
        import optuna

        state, value = outcome(result)
        try:
            if state == "complete":
                study.tell(trial, value)
            else:
                study.tell(trial, state=getattr(optuna.trial.TrialState, state.upper()))
        except (RuntimeError, ValueError) as err:  # failed as stale meanwhile
            log.warning("trial %d could not be told its outcome: %s", trial.number, err)
            return state
        if state != "complete":
            log.warning("trial %d %s", trial.number, "failed" if state == "fail" else "pruned")
        return state

    def _save_results(self, study: Any) -> None:
        import optuna

        states = [t.state for t in study.get_trials(deepcopy=False)]
        results: dict[str, Any] = {
            "name": "optuna",
            "study": study.study_name,
            "trials": len(states),
            "pruned": states.count(optuna.trial.TrialState.PRUNED),
            "failed": states.count(optuna.trial.TrialState.FAIL),
        }
        if optuna.trial.TrialState.COMPLETE in states and len(study.directions) == 1:
            best = study.best_trial
            results |= {"best_params": best.params, "best_value": best.value}
        assert self.config is not None
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")


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
    """Hold the study's lock: a file lock beside a journal file or a SQLite database, a
    PostgreSQL advisory lock; waiting at most ``timeout`` seconds."""
    url = str(storage or "")
    if url.startswith("sqlite:///") or (url and is_journal(url)):
        # Not <journal>.lock: Optuna's journal takes that name for its own lock.
        lock_path = Path(
            url.removeprefix("sqlite:///") + (".lock" if "://" in url else ".budget.lock")
        )
        lock_path.parent.mkdir(parents=True, exist_ok=True)
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
            f"hydra.sweeper.storage {redact(url)!r}: a shared study needs a journal file path, "
            "sqlite:/// or postgresql://"
        )
    else:
        yield
