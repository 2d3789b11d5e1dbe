"""A release of trainlab: the version bumped, the CHANGELOG's section named, wheel and sdist.

    python scripts/release.py 0.3.0       # make release VERSION=0.3.0
    python scripts/release.py             # build the version pyproject.toml holds (no bump)

With a version (semver, above the current one), it renames the CHANGELOG's ``[Unreleased]``
section to ``[VERSION] - <today>`` (it must hold an entry) under a new empty ``[Unreleased]``,
and sets the version in ``pyproject.toml`` and the package's ``__version__``. Then it builds
the wheel and the sdist into ``dist/`` from the files git tracks (``thin_project.source_tree``:
the snapshot of the contracts and the config surface goes in ``project_files/snapshot.json``),
checks that the wheel carries the configs, the upgrader, the project files, the snapshot and
the CHANGELOG section of its version, and prints the artifacts' sha256 and the git commands
that commit and tag the release. It refuses a tree with uncommitted changes (``--allow-dirty``:
a trial) and never replaces a file in ``dist/``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from thin_project import REPRODUCIBLE, git_state, package_of, source_tree

ROOT = Path(__file__).resolve().parents[1]
SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def fail(message: str) -> SystemExit:
    return SystemExit(f"release: error: {message}")


def parsed(version: str) -> tuple[int, int, int]:
    found = SEMVER.match(version)
    if not found:
        raise fail(f"version {version!r} is not MAJOR.MINOR.PATCH (semver), e.g. 0.3.0")
    major, minor, patch = (int(v) for v in found.groups())
    return major, minor, patch


def bump(root: Path, version: str, today: str) -> None:
    """pyproject.toml's version and the CHANGELOG's section for it; both files or neither."""
    _, current = package_of(root)
    if parsed(version) <= parsed(current):
        raise fail(f"version {version} is not above the current {current}")
    changelog = (root / "CHANGELOG.md").read_text()
    unreleased = re.search(r"^## \[Unreleased\]\n(.*?)(?=^## \[|\Z)", changelog, re.M | re.S)
    if not unreleased or not re.search(r"^- ", unreleased.group(1), re.M):
        raise fail("CHANGELOG.md's [Unreleased] section has no entry: say what the release holds")
    named = changelog.replace(
        "## [Unreleased]\n", f"## [Unreleased]\n\n## [{version}] - {today}\n", 1
    )
    pyproject = (root / "pyproject.toml").read_text()
    pinned = re.sub(r'^version = "[^"]+"', f'version = "{version}"', pyproject, count=1, flags=re.M)
    init = package_init(root)
    line = f'__version__ = "{version}"'
    stated = re.sub(r'^__version__ = "[^"]+"', line, init.read_text(), count=1, flags=re.M)
    changed = {root / "CHANGELOG.md": named, root / "pyproject.toml": pinned, init: stated}
    for path, text in changed.items():
        path.with_name(f".{path.name}.part").write_text(text)
    for path in changed:
        os.replace(path.with_name(f".{path.name}.part"), path)


def package_init(root: Path) -> Path:
    """The package's ``__init__.py``, whose ``__version__`` says the version at run time."""
    return root / "src" / package_of(root)[0] / "__init__.py"


def build(root: Path, dist: Path) -> list[Path]:
    """The wheel and the sdist of ``root`` into ``dist``, built without fetching anything."""
    package, version = package_of(root)
    dist.mkdir(parents=True, exist_ok=True)
    if clash := sorted(dist.glob(f"{package}-{version}[.-]*")):
        raise fail(f"{clash[0]} exists: a release is never rebuilt over (remove it yourself)")
    with tempfile.TemporaryDirectory() as tmp:
        tree, out = Path(tmp) / "tree", Path(tmp) / "out"
        source_tree(root, tree)
        env = {**os.environ, **REPRODUCIBLE}
        wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        sdist = (
            "from setuptools import build_meta; build_meta.build_sdist(__import__('sys').argv[1])"
        )
        for command in (
            [*wheel, "-w", str(out), str(tree)],
            [sys.executable, "-c", sdist, str(out)],
        ):
            done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise fail(f"building failed:\n{done.stderr[-3000:]}")
        made = []
        for artifact in sorted(out.iterdir()):
            target = dist / artifact.name
            os.link(artifact, target)  # fails where the name appeared meanwhile
            made.append(target)
    return made


def check_wheel(wheel: Path, package: str, version: str) -> None:
    """What a project needs from the wheel is in it."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        changelog = archive.read(f"{package}/project_files/CHANGELOG.md").decode()
    needed = [
        f"{package}/conf/train.yaml",
        f"{package}/upgrade.py",
        f"{package}/contracts.py",
        *(
            f"{package}/project_files/{name}"
            for name in ("Makefile", "gitignore", "constraints.txt", "trainlab.lock")
        ),
        f"{package}/project_files/snapshot.json",
    ]
    if missing := [n for n in needed if n not in names]:
        raise fail(f"{wheel.name} lacks {', '.join(missing)}")
    if f"## [{version}]" not in changelog:
        raise fail(f"{wheel.name}'s CHANGELOG.md has no section [{version}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version", nargs="?", help="the new version; none: build the current")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--allow-dirty", action="store_true", help="build uncommitted changes")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    commit, dirty = git_state(root)
    if dirty and not args.allow_dirty:
        raise fail(f"{root} has uncommitted changes (or is not a git checkout): commit first")
    before = {
        p: p.read_bytes()
        for p in (root / "CHANGELOG.md", root / "pyproject.toml", package_init(root))
    }
    try:
        if args.version:
            bump(root, args.version, datetime.date.today().isoformat())
        package, version = package_of(root)
        made = build(root, args.dist)
        (wheel,) = [m for m in made if m.suffix == ".whl"]
        check_wheel(wheel, package, version)
    except BaseException:  # a release is made whole or not at all: the bump goes back
        for path, data in before.items():
            path.write_bytes(data)
        raise
    for artifact in made:
        print(f"{hashlib.sha256(artifact.read_bytes()).hexdigest()}  {artifact}")
    print(f"{package} {version} built from {commit or 'an unrecorded commit'}", end="")
    print(" with uncommitted changes" if dirty else "")
    if args.version:
        print(f'next: git commit -am "Release {version}" && git tag -a v{version} -m {version}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
