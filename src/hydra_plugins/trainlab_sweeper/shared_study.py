"""``hydra.sweeper._target_: hydra_plugins.trainlab_sweeper.shared_study.SharedStudySweeper``:
trainlab's Optuna sweeper (see :mod:`trainlab.sweeps.optuna`) under the name configs written
for trainlab 0.1 give it. ``hydra/sweeper=optuna`` names the same class as
``hydra_plugins.trainlab_sweeper.OptunaSweeper``."""

from __future__ import annotations

from trainlab.sweeps.optuna import StudySweeper


class SharedStudySweeper(StudySweeper):
    """trainlab's Optuna sweeper: one study, one budget for all its workers, pruning."""
