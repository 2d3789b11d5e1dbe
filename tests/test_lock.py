"""The locked supply chain: every install reads a lock in which each package is pinned to
constraints.txt's version and hashed, and no known-bad release can be locked or required."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import lock  # noqa: E402


def test_every_locked_package_is_pinned_to_the_constraints_and_hashed() -> None:
    assert lock.check(lock.constraints()) == []
    for name in lock.SETS:
        found = lock.parse((ROOT / "locks" / f"{name}.txt").read_text())
        assert len(found) > 50, name  # whole: dependencies of dependencies too
        for package, (_version, hashes) in found.items():
            assert hashes and all(re.fullmatch("[0-9a-f]{64}", h) for h in hashes), package
    core = lock.parse((ROOT / "locks" / "core.txt").read_text())
    everything = lock.parse((ROOT / "locks" / "all-dev-mlflow.txt").read_text())
    assert core.keys() < everything.keys() and {"torch", "lightning", "setuptools"} <= core.keys()
    assert core["torch"][0] == "2.13.0+cpu" and len(core["torch"][1]) == 1  # that build alone


def test_a_lost_hash_a_drifted_version_and_a_missing_lock_are_caught(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    shutil.copytree(ROOT / "locks", locks)
    text = (locks / "core.txt").read_text()
    numpy = lock.parse(text)["numpy"][0]
    hashed = re.search(rf"^numpy=={re.escape(numpy)} \\\n(    --hash=\S+( \\)?\n)+", text, re.M)
    assert hashed is not None
    (locks / "core.txt").write_text(text.replace(hashed.group(0), f"numpy=={numpy}\n"))
    (locks / "dev.txt").write_text(
        (locks / "dev.txt").read_text().replace(f"numpy=={numpy} ", "numpy==0.0.1 ")
    )
    (locks / "thin.txt").unlink()
    problems = lock.check(lock.constraints(), locks)
    assert f"locks/core.txt: numpy=={numpy} has no --hash" in problems
    assert f"locks/dev.txt: numpy==0.0.1, constraints.txt pins {numpy}" in problems
    assert "locks/thin.txt is missing: run make lock" in problems
    assert len(problems) == 3


def test_known_bad_lightning_releases_are_refused_everywhere(tmp_path: Path) -> None:
    for version in ("2.6.2", "2.6.3"):
        assert "GHSA-w37p-236h-pfx3" in (lock.known_bad("Lightning", version) or "")
    assert lock.known_bad("lightning", "2.6.6") is None
    bad = tmp_path / "constraints.txt"
    bad.write_text(
        (ROOT / "constraints.txt").read_text().replace("lightning==2.6.6", "lightning==2.6.3")
    )
    problems = lock.check(lock.constraints(bad))
    assert "constraints.txt: lightning==2.6.3 is known bad: GHSA-w37p-236h-pfx3" in problems[-1]
    # installing trainlab without a lock cannot take them either
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [Requirement(r) for r in project["dependencies"] if r.startswith("lightning")]
    assert not spec.specifier.contains("2.6.2") and not spec.specifier.contains("2.6.3")
    assert spec.specifier.contains("2.6.6")


def test_every_install_reads_a_lock_and_the_tests_run_on_the_locked_versions() -> None:
    makefile = (ROOT / "Makefile").read_text()
    used = re.findall(r"--require-hashes -r locks/([\w-]+)\.txt", makefile)
    assert set(used) == {"all-dev", "all-dev-mlflow"} and set(used) <= set(lock.SETS)
    assert "-c constraints.txt" not in makefile  # no unhashed install left
    thin = (ROOT / "templates" / "thin" / "Makefile").read_text()
    assert "--require-hashes -r trainlab.lock" in thin and "-c constraints.txt" not in thin
    dev = tomllib.loads((ROOT / "templates" / "thin" / "pyproject.toml").read_text())
    assert set(dev["project"]["optional-dependencies"]["dev"]) <= set(lock.SETS["thin"])
    locked = lock.parse((ROOT / "locks" / "all-dev.txt").read_text())
    for package, (version, _) in locked.items():
        installed = importlib.metadata.version(package)
        assert lock.public(installed) == lock.public(version), package
