"""trainlab's configs, importable as a package so that a project on trainlab finds them at
``pkg://trainlab.conf`` (its ``hydra.searchpath``)."""
