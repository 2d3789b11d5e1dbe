"""Releases (``make release VERSION=x.y.z``): semver bumps with their CHANGELOG section, a wheel
and an sdist that carry what a project upgrades from, and nothing half done."""

from __future__ import annotations

import datetime
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, copy_checkout

sys.path.insert(0, str(ROOT / "scripts"))

import new_project
from thin_project import package_of


def _checkout(tmp_path: Path) -> Path:
    """A committed copy of this checkout, to release from."""
    repo = copy_checkout(tmp_path / "repo")
    changelog = repo / "CHANGELOG.md"  # what the next release holds
    text = changelog.read_text()
    changelog.write_text(
        text.replace("## [Unreleased]\n", "## [Unreleased]\n\n### Added\n- X.\n", 1)
    )
    new_project.fresh_history(repo, "release")
    return repo


def _release(repo: Path, dist: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = ROOT / "scripts" / "release.py"
    command = [sys.executable, str(script), "--root", str(repo), "--dist", str(dist), *args]
    return subprocess.run(command, capture_output=True, text=True)


def _commit(repo: Path) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=r", "-c", "user.email=r@x", "commit", "-qm", "next"],
        cwd=repo,
        check=True,
    )


def test_the_package_states_the_version_it_is_released_as() -> None:
    import trainlab

    assert trainlab.__version__ == package_of(ROOT)[1]


@pytest.mark.slow
def test_a_release_bumps_names_its_changes_and_builds_what_projects_need(tmp_path: Path) -> None:
    repo, dist = _checkout(tmp_path), tmp_path / "dist"
    _, current = package_of(repo)
    major, minor, _ = (int(v) for v in current.split("."))
    version = f"{major}.{minor + 1}.0"
    entries = (repo / "CHANGELOG.md").read_text().split("## [Unreleased]\n", 1)[1]

    for bad, said in (("1.2", "is not MAJOR.MINOR.PATCH"), (current, "is not above the current")):
        refused = _release(repo, dist, bad)
        assert refused.returncode != 0 and said in refused.stderr
    (repo / "README.md").write_text("changed\n")
    dirty = _release(repo, dist, version)
    assert dirty.returncode != 0 and "uncommitted changes" in dirty.stderr
    subprocess.run(["git", "checkout", "README.md"], cwd=repo, check=True)

    made = _release(repo, dist, version)
    assert made.returncode == 0, made.stderr
    assert package_of(repo)[1] == version
    assert f'__version__ = "{version}"' in (repo / "src" / "trainlab" / "__init__.py").read_text()
    today = datetime.date.today().isoformat()
    changelog = (repo / "CHANGELOG.md").read_text()
    assert changelog.split("## [Unreleased]\n", 1)[1] == f"\n## [{version}] - {today}\n{entries}"
    wheel, sdist = (
        dist / f"trainlab-{version}-py3-none-any.whl",
        dist / f"trainlab-{version}.tar.gz",
    )
    assert wheel.is_file() and sdist.is_file()
    assert f'next: git commit -am "Release {version}" && git tag -a v{version}' in made.stdout
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        carried = archive.read("trainlab/project_files/CHANGELOG.md").decode()
    assert {"trainlab/upgrade.py", "trainlab/project_files/snapshot.json"} <= names
    assert f"## [{version}] - {today}" in carried
    assert not any(n.startswith(("tests/", "trainlab/tests")) for n in names)

    # the next release needs an entry; a failed build leaves the version and CHANGELOG as
    # they were, and nothing in dist/ is built over
    _commit(repo)
    empty = _release(repo, dist, f"{major}.{minor + 1}.1")
    assert empty.returncode != 0 and "[Unreleased] section has no entry" in empty.stderr
    (repo / "CHANGELOG.md").write_text(
        changelog.replace("## [Unreleased]\n", "## [Unreleased]\n\n### Fixed\n- A fix.\n", 1)
    )
    _commit(repo)
    bumped = (repo / "CHANGELOG.md", repo / "pyproject.toml", repo / "src/trainlab/__init__.py")
    before = {p: p.read_bytes() for p in bumped}
    blocker = dist / f"trainlab-{major}.{minor + 1}.1-py3-none-any.whl"
    blocker.write_text("someone's file")
    clash = _release(repo, dist, f"{major}.{minor + 1}.1")
    assert clash.returncode != 0 and "is never rebuilt over" in clash.stderr
    assert {p: p.read_bytes() for p in before} == before and blocker.read_text() == "someone's file"
