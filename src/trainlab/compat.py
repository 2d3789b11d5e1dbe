"""Where trainlab meets Lightning's version: the minor it is tested with.

trainlab uses Lightning's public API only. Any private Lightning name (``trainer._...``, loop
internals) the project ever needs goes here, with a comment saying why, so that an upgrade has
one file to check; ``tests/test_compat.py`` fails, naming the versions, when the installed
Lightning is outside the tested range that ``pyproject.toml`` also pins.
"""

from __future__ import annotations

import logging
from importlib.metadata import version

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
