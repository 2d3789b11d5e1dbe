"""``hydra.sweeper._target_: hydra_plugins.trainlab_sweeper.shared_study.SharedStudySweeper``:
Hydra's Optuna sweeper with one trial budget for every worker of a study (see
:mod:`trainlab.sweeps.optuna`). Hydra imports every plugin module when it starts, so the work
is imported only when the sweeper is built."""

from __future__ import annotations

from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class SharedStudySweeper(OptunaSweeper):
    """Hydra's Optuna sweeper, the same settings; ``n_trials`` is the study's budget."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from trainlab.sweeps.optuna import SharedStudyImpl

        self.sweeper = SharedStudyImpl(*args, **kwargs)
