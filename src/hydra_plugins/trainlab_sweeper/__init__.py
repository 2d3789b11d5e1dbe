"""trainlab's Hydra plugins (Hydra finds plugins in the ``hydra_plugins`` namespace only).

``hydra/sweeper=optuna`` (conf/hydra/sweeper/optuna.yaml) builds :class:`OptunaSweeper`:
trainlab's sweeper on current Optuna (:mod:`trainlab.sweeps.optuna`). Hydra imports every
plugin module when it starts; nothing here imports Optuna.
"""

from trainlab.sweeps.optuna import StudySweeper


class OptunaSweeper(StudySweeper):
    """trainlab's Optuna sweeper: one study, one budget for all its workers, pruning."""


__all__ = ["OptunaSweeper"]
