"""Run trainlab's entry points from a project of one's own, with trainlab a pinned dependency.

A thin project (``make new-project NAME=myproj MODE=thin``) holds only its own parts: its
package (DataModules, nets, models) and its ``conf/``. Its entry points are one call each::

    # src/myproj/train.py
    from trainlab.project import main

    if __name__ == "__main__":
        main("train", CONF, "myproj")  # CONF: the project's conf/ directory

- ``train`` composes the project's primary config ``conf/<name>.yaml``. It extends trainlab's
  ``train`` (``defaults: [train, override data: ..., _self_]``) and puts trainlab's configs on
  the search path after its own (``hydra.searchpath: [pkg://trainlab.conf]``), so an option of
  the project's wins over a trainlab option of the same name.
- ``eval``, ``predict`` and ``export`` compose trainlab's own primary config, with the project's
  ``conf/`` added as Hydra's ``--config-dir``: a run's config is rebuilt only from targets that
  the project's configs or trainlab's name (:func:`trainlab.trust.loading.check_buildable`).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import hydra

from trainlab.runtime.cli import start
from trainlab.runtime.configs import CONFIG_DIR, HYDRA
from trainlab.runtime.ddp import child_argv

ENTRIES = ("train", "eval", "predict", "export")


def main(entry: str, conf: Path, name: str) -> None:
    """Run trainlab's ``entry`` (one of :data:`ENTRIES`) with the project's configs in ``conf``;
    ``name`` is the project's primary training config, ``conf/<name>.yaml``."""
    if entry not in ENTRIES:
        raise ValueError(f"entry {entry!r} is not one of {', '.join(ENTRIES)}")
    conf = Path(conf).resolve()
    job = importlib.import_module(f"trainlab.{entry}").job
    if entry == "train":
        sys.argv = child_argv(sys.argv)  # a DDP child runs only its own sweep job
        run = hydra.main(**{**HYDRA, "config_path": str(conf)}, config_name=name)(job)
        start(entry, run, (conf, CONFIG_DIR), name)
        return
    if not any(a in ("-cd", "--config-dir") or a.startswith("--config-dir=") for a in sys.argv):
        sys.argv = [sys.argv[0], f"--config-dir={conf}", *sys.argv[1:]]
    start(entry, hydra.main(**HYDRA, config_name=entry)(job), (CONFIG_DIR, conf))
