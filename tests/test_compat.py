"""The installed Lightning is the minor trainlab is tested with, and no private Lightning name
is used outside ``trainlab.compat``."""

from __future__ import annotations

import re
import sys
from importlib.metadata import version

import tomllib
from packaging.specifiers import SpecifierSet

from tests.conftest import ROOT
from trainlab.compat import TESTED_LIGHTNING, lightning_is_tested

PRIVATE = re.compile(
    r"\b(trainer|loop|epoch_loop|fit_loop|connector|strategy|callback|checkpoint_callback"
    r"|super\(\))\._(?!(target|partial)_)[a-z]"  # not Hydra's _target_ and _partial_
)


def test_installed_lightning_is_the_tested_minor() -> None:
    installed = version("lightning")
    assert lightning_is_tested(), (
        f"lightning {installed} is installed, but trainlab is tested with lightning"
        f"{TESTED_LIGHTNING}: run `make install` (constraints.txt), or test the new version "
        "and update trainlab/compat.py and pyproject.toml together"
    )
    assert not lightning_is_tested("2.7.0") and not lightning_is_tested("2.5.9")


def test_pyproject_pins_the_same_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if re.match(r"lightning\b", d)]
    assert len(pins) == 1
    sys.path.insert(0, str(ROOT / "scripts"))
    from lock import KNOWN_BAD

    excluded = SpecifierSet(",".join(f"!={v}" for v in KNOWN_BAD["lightning"]))
    spec = SpecifierSet(pins[0].removeprefix("lightning"))
    assert spec == SpecifierSet(TESTED_LIGHTNING) & excluded  # the tested range, no bad release


def test_torch_is_new_enough_for_weights_only_loads() -> None:
    from packaging.version import Version

    from trainlab.trust.loading import MIN_TORCH

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (pin,) = [
        d.split("#")[0].strip() for d in project["dependencies"] if re.match(r"torch[<>=~! ]", d)
    ]
    allowed = SpecifierSet(pin.removeprefix("torch"))
    assert MIN_TORCH in allowed and "2.5.1" not in allowed, pin
    assert Version(version("torch").split("+")[0]) >= Version(MIN_TORCH)


def test_private_lightning_names_live_in_compat_only() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "src").rglob("*.py"))
        if path.name != "compat.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert not found, "private Lightning names outside trainlab/compat.py:\n" + "\n".join(found)
