"""Hash-locked requirements, made from ``constraints.txt``: ``locks/<set>.txt`` for trainlab's
core, each extra, and what ``make install``, ``make install-mlflow`` and a thin project install.

    python scripts/lock.py            # every set (make lock); needs the package index
    python scripts/lock.py --check    # the locks agree with constraints.txt and are whole

Each set is resolved by pip (``pip install --dry-run --report``) under the constraints, so a
lock holds exactly the constrained versions a fresh install of that set takes on this platform
(CPython 3.11, Linux x86_64), dependencies of dependencies included. Every requirement carries
the sha256 of each file the index serves for that version (so the same lock installs from
wheels of other platforms, or the sdist) and of the file pip chose here. A build with a local
version label, such as torch's CPU build ``2.13.0+cpu`` from a ``--find-links`` folder or
PyTorch's CPU index, is locked as that build alone. A known-bad release (:data:`KNOWN_BAD`) is
refused wherever it appears. Install a lock with ``pip install --require-hashes -r
locks/<set>.txt``, then the project itself with ``--no-deps``: pip checks every file against
its hashes and installs nothing unlisted. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "locks"
INDEX = "https://pypi.org/simple"
# set name: what it installs (``.`` is trainlab itself, its extras in brackets)
SETS: dict[str, list[str]] = {
    "core": ["."],
    "graph": [".[graph]"],
    "export": [".[export]"],
    "postgres": [".[postgres]"],
    "mlflow": [".[mlflow]"],
    "dev": [".[dev]"],
    "all": [".[all]"],
    "all-dev": [".[all,dev]"],  # make install
    "all-dev-mlflow": [".[all,dev,mlflow]"],  # make install-mlflow
    "thin": [".", "pytest", "ruff", "mypy"],  # a thin project: trainlab and its dev tools
}
# Every set builds editable or local projects with setuptools, without build isolation.
BUILD = ["setuptools"]
# Releases never to install, with the advisory that says why (name: {version: advisory}).
KNOWN_BAD: dict[str, dict[str, str]] = {
    "lightning": {
        "2.6.2": "GHSA-w37p-236h-pfx3 (stole credentials on import)",
        "2.6.3": "GHSA-w37p-236h-pfx3 (stole credentials on import)",
    },
}
LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def public(version: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0``: the local label names a build, and ``==2.13.0`` takes it."""
    return version.split("+", 1)[0]


def constraints(path: Path = ROOT / "constraints.txt") -> dict[str, str]:
    pinned = {}
    for line in path.read_text().splitlines():
        if found := LINE.match(line.strip()):
            pinned[canonical(found.group(1))] = found.group(2)
    return pinned


def known_bad(name: str, version: str) -> str | None:
    return KNOWN_BAD.get(canonical(name), {}).get(public(version))


def resolve(requirements: list[str]) -> list[tuple[str, str, str]]:
    """(name, version, sha256 of the file pip chose) for each package the set installs."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        args = [str(ROOT) + r[1:] if r.startswith(".") else r for r in [*requirements, *BUILD]]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                "-c",
                str(ROOT / "constraints.txt"),
                *args,
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"lock: error: pip could not resolve {requirements}:\n{done.stderr}")
        found = json.loads(report.read_text())["install"]
    chosen = []
    for item in found:
        meta, info = item["metadata"], item["download_info"]
        if "archive_info" not in info:
            continue  # trainlab itself (a directory)
        chosen.append((meta["name"], meta["version"], info["archive_info"]["hashes"]["sha256"]))
    return chosen


def index_hashes(name: str, version: str) -> set[str]:
    """The sha256 of every file the index serves for ``name`` at ``version`` (PEP 691)."""
    request = urllib.request.Request(
        f"{INDEX}/{canonical(name)}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    wanted = re.compile(
        rf"^{re.escape(canonical(name)).replace('-', '[-_.]')}-{re.escape(version)}"
        r"(\.tar\.gz|\.zip|-.+\.whl)$",
        re.I,
    )
    return {f["hashes"]["sha256"] for f in files if wanted.match(f["filename"])}


def lock(name: str, requirements: list[str], pinned: dict[str, str]) -> str:
    shown = ["trainlab" + r[1:] if r.startswith(".") else r for r in requirements]
    lines = [
        f"# locks/{name}.txt: {' '.join(shown)} and its dependencies, every file hashed.",
        "# Made by `make lock` (scripts/lock.py) from constraints.txt; do not edit. Install:",
        f"#   pip install --require-hashes -r locks/{name}.txt",
    ]
    for package, version, sha in sorted(resolve(requirements), key=lambda p: canonical(p[0])):
        if advisory := known_bad(package, version):
            raise SystemExit(f"lock: error: {package} {version} is known bad: {advisory}")
        if public(pinned.get(canonical(package), "")) != public(version):
            raise SystemExit(
                f"lock: error: {package} {version} resolved, constraints.txt pins "
                f"{pinned.get(canonical(package), 'nothing')}: add it there first"
            )
        # A build with a local label (torch's 2.13.0+cpu from --find-links) is locked as
        # itself: the index's files of 2.13.0 are other builds, with other dependencies (and
        # pip would rank them first, since the index states their hashes).
        hashes = {sha} if "+" in version else {sha} | index_hashes(package, version)
        lines.append(f"{canonical(package)}=={version} \\")
        lines += [f"    --hash=sha256:{h} \\" for h in sorted(hashes)]
        lines[-1] = lines[-1].removesuffix(" \\")
    return "\n".join(lines) + "\n"


def parse(text: str) -> dict[str, tuple[str, list[str]]]:
    """A lock's requirements: name -> (version, hashes)."""
    found: dict[str, tuple[str, list[str]]] = {}
    for requirement in text.replace("\\\n", " ").splitlines():
        requirement = requirement.strip()
        if not requirement or requirement.startswith("#"):
            continue
        match = LINE.match(requirement)
        if not match:
            raise ValueError(f"not a pinned requirement: {requirement!r}")
        found[canonical(match.group(1))] = (match.group(2), HASH.findall(requirement))
    return found


def check(pinned: dict[str, str], locks: Path = LOCKS) -> list[str]:
    """What is wrong with the locks: empty when each set has its lock, every requirement is
    pinned to constraints.txt's version with hashes, and none is known bad."""
    problems = []
    for name in SETS:
        path = locks / f"{name}.txt"
        if not path.is_file():
            problems.append(f"locks/{name}.txt is missing: run make lock")
            continue
        for package, (version, hashes) in parse(path.read_text()).items():
            where = f"locks/{name}.txt: {package}=={version}"
            if not hashes:
                problems.append(f"{where} has no --hash")
            if public(pinned.get(package, "")) != public(version):
                problems.append(f"{where}, constraints.txt pins {pinned.get(package)}")
            if advisory := known_bad(package, version):
                problems.append(f"{where} is known bad: {advisory}")
    for package, version in pinned.items():
        if advisory := known_bad(package, version):
            problems.append(f"constraints.txt: {package}=={version} is known bad: {advisory}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check the locks; change nothing")
    parser.add_argument("sets", nargs="*", metavar="SET", help=f"of {', '.join(SETS)}")
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.sets) - set(SETS)):
        parser.error(f"no set {', '.join(unknown)}; the sets: {', '.join(SETS)}")
    pinned = constraints()
    if args.check:
        problems = check(pinned)
        print("\n".join(problems) or f"{len(SETS)} locks agree with constraints.txt")
        return 1 if problems else 0
    LOCKS.mkdir(exist_ok=True)
    for name in args.sets or SETS:
        text = lock(name, SETS[name], pinned)
        part = LOCKS / f".{name}.txt.part"
        part.write_text(text)
        os.replace(part, LOCKS / f"{name}.txt")
        print(f"locks/{name}.txt: {text.count('==')} packages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
