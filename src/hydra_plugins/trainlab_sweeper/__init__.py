"""trainlab's Hydra plugins (Hydra finds plugins in the ``hydra_plugins`` namespace only).

``hydra/sweeper=optuna`` (conf/hydra/sweeper/optuna.yaml) builds :class:`OptunaSweeper`:
trainlab's sweeper on current Optuna (:mod:`trainlab.sweeps.optuna`). Hydra imports every
plugin module when it starts; nothing here imports Optuna.

``hydra/sweeper=grid`` (the default, conf/hydra/sweeper/grid.yaml) is Hydra's basic sweeper
composing each job once (:mod:`trainlab.sweeps.grid`).
"""

from trainlab.sweeps.grid import ComposedOnceSweeper
from trainlab.sweeps.optuna import StudySweeper


class GridSweeper(ComposedOnceSweeper):
    """Hydra's basic sweeper with each job's config composed once: trainlab's default."""


class OptunaSweeper(StudySweeper):
    """trainlab's Optuna sweeper: one study, one budget for all its workers, pruning."""


__all__ = ["GridSweeper", "OptunaSweeper"]
