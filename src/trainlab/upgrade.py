"""Move a thin project to another trainlab: a released version, a wheel file or a checkout.

    python -m trainlab.upgrade 0.3.0                        # from the package index
    python -m trainlab.upgrade dist/trainlab-0.3.0-py3-none-any.whl
    python -m trainlab.upgrade ../trainlab                  # a checkout: builds its wheel
    make upgrade FROM=0.3.0                                 (in the project, the same)

It prints what changed between the trainlab the project records (``.trainlab/project.json``)
and the new one: the contracts, the signatures of what the project calls and the config
surface (breaking changes first, :func:`trainlab.contracts.changes` as the new wheel answers
it), then the CHANGELOG's sections in between (or the commits, from a checkout). It replaces
the wheel in ``vendor/``, pins ``pyproject.toml`` to the new version, and updates the files
trainlab owns in a project (``Makefile``, ``.gitignore``, ``constraints.txt``,
``trainlab.lock``, which the wheel carries in ``project_files/``) where the project did not
edit them; those it did are named and left. Nothing is overwritten that this tool did not
write, and no file a project commits holds a path of this machine.

Standard library only, and it imports nothing of trainlab: a checkout's
``scripts/thin_project.py`` loads this file to upgrade projects whose own trainlab predates it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

RECORD = Path(".trainlab") / "project.json"
# a project's files that trainlab owns, and their names in the wheel's project_files/
OWNED = {
    "Makefile": "Makefile",
    ".gitignore": "gitignore",
    "constraints.txt": "constraints.txt",
    "trainlab.lock": "trainlab.lock",
}
TEMPLATE_NAME = re.compile(r'^name = "([^"]+)"', re.M)
SEMVER = re.compile(r"^\d+\.\d+\.\d+([-.+][0-9A-Za-z.-]+)?$")


class UpgradeError(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"upgrade: error: {message}")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def pin(text: str, record: dict[str, Any]) -> str:
    """pyproject.toml's ``"trainlab==..."`` pinned to the record's version."""
    package = record["package"]
    return re.sub(rf'"{package}==[^"]*"', f'"{package}=={record["version"]}"', text)


def wheel_name(wheel: Path) -> tuple[str, str]:
    """The distribution and version a wheel's file name states (PEP 427)."""
    parts = wheel.name.split("-")
    if not wheel.name.endswith(".whl") or len(parts) < 5:
        raise UpgradeError(f"{wheel} is not a wheel file")
    return parts[0], parts[1]


def from_wheel(wheel: Path, package: str, call: str, given: object = None) -> Any:
    """``<package>.contracts.<call>(*given)`` as the wheel's trainlab answers it (``given`` and
    the answer travel as JSON; a source folder such as a build tree's ``src/`` serves as well).
    The wheel comes first on the path, before any trainlab that is installed; its dependencies
    come from this Python's site-packages (the signatures of the API need them)."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); "
        f"import {package}; "
        f"assert {package}.__file__.startswith(sys.argv[1]), {package}.__file__; "
        f"from {package}.contracts import {call}; "
        f"print(json.dumps({call}(*json.load(sys.stdin))))"
    )
    said = subprocess.run(
        [sys.executable, "-c", code, str(wheel)],
        input=json.dumps(given or []),
        capture_output=True,
        text=True,
    )
    if said.returncode != 0:
        raise UpgradeError(f"{wheel.name}'s contracts.{call}:\n{said.stderr}")
    return json.loads(said.stdout)


def snapshot_of(wheel: Path, package: str, carried: dict[str, bytes]) -> Any:
    """The contracts and config surface the wheel states: the ``snapshot.json`` it carries
    (:func:`project_files`, written when it was built), else as its code answers."""
    if "snapshot.json" in carried:
        return json.loads(carried["snapshot.json"])
    return from_wheel(wheel, package, "snapshot")


def project_files(wheel: Path, package: str) -> dict[str, bytes]:
    """What the wheel carries for projects, by file name in ``<package>/project_files/``."""
    prefix = f"{package}/project_files/"
    with zipfile.ZipFile(wheel) as archive:
        found = {
            name.removeprefix(prefix): archive.read(name)
            for name in archive.namelist()
            if name.startswith(prefix) and "/" not in name.removeprefix(prefix)
        }
    if "Makefile" not in found:
        raise UpgradeError(f"{wheel.name} carries no project files: a trainlab before upgrades")
    return found


def owned_files(carried: dict[str, bytes], name: str) -> dict[str, bytes]:
    """The files trainlab owns in a project named ``name``, as the wheel that carries them
    (:func:`project_files`) writes them: the thin template's package name replaced."""
    template = TEMPLATE_NAME.search(carried.get("pyproject.toml", b"").decode())
    placeholder = template.group(1) if template else "myproj"
    files = {}
    for rel, inside in OWNED.items():
        if inside in carried:
            data = carried[inside]
            if rel in ("Makefile", ".gitignore"):
                data = data.replace(placeholder.encode(), name.encode())
            files[rel] = data
    return files


def changelog(carried: dict[str, bytes], old: str, new: str) -> list[str]:
    """The sections of the CHANGELOG a wheel carries (:func:`project_files`) after ``old`` up
    to ``new`` (from the newest): each version's heading, its kinds of change and the first
    line of each entry."""
    text = carried.get("CHANGELOG.md", b"").decode()
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if heading := re.match(r"^## \[([^\]]+)\](.*)", line):
            sections.append((heading.group(1), [f"{heading.group(1)}{heading.group(2)}"]))
        elif sections and line.startswith(("### ", "- ")):
            sections[-1][1].append(line.removeprefix("### ")[:120])
    versions = [version for version, _ in sections]
    start = versions.index(new) if new in versions else 0
    end = versions.index(old) if old in versions else len(sections)
    return [line for _, lines in sections[start:end] for line in lines if len(lines) > 1]


def ours(project: Path, path: Path) -> bool:
    """A wheel in the project's ``vendor/``: what an upgrade may remove (a record names it, and
    a record is a file that may have been edited)."""
    vendor = (project / "vendor").resolve()
    return path.suffix == ".whl" and path.is_file() and path.resolve().parent == vendor


def project_name(project: Path) -> str:
    found = TEMPLATE_NAME.search((project / "pyproject.toml").read_text())
    if not found:
        raise UpgradeError(f"{project}/pyproject.toml names no project")
    return found.group(1)


def upgrade(
    project: Path,
    wheel: Path,
    source: dict[str, Any],
    history: list[str] | None = None,
) -> None:
    """Pin ``project`` to ``wheel``. ``source`` says where the wheel came from (``from``:
    ``index``, ``wheel`` or ``checkout``, and a checkout's ``commit`` and ``dirty``);
    ``history`` is what happened in between (a checkout's commits), else the CHANGELOG says."""
    record_path = project / RECORD
    if not record_path.is_file():
        raise UpgradeError(f"{project} has no {RECORD}: not a thin project")
    old = json.loads(record_path.read_text())
    package, version = old["package"], wheel_name(wheel)[1]
    name = project_name(project)
    data, carried = wheel.read_bytes(), project_files(wheel, package)
    new: dict[str, Any] = {
        "package": package,
        "version": version,
        "from": source.get("from", "wheel"),
        "commit": source.get("commit"),
        "dirty": bool(source.get("dirty", False)),
        "wheel": f"vendor/{wheel.name}",
        "sha256": digest(data),
        "contracts": snapshot_of(wheel, package, carried),
    }
    written, owned = old.get("owned", {}), owned_files(carried, name)
    kept, updated, new["owned"] = [], [], dict(written)
    for rel, content in owned.items():
        here = project / rel
        now = digest(here.read_bytes()) if here.is_file() else None
        if now != digest(content) and now is not None and now != written.get(rel):
            kept.append(rel)  # the project edited it: never overwritten
        elif now != digest(content):
            updated.append(rel)
        new["owned"][rel] = digest(content) if rel not in kept else written.get(rel)
    if new["sha256"] == old["sha256"] and not updated:
        print(f"{name}: already pinned to this trainlab ({old['version']}, {new['sha256'][:12]})")
        return
    where = f" at {new['commit']}" if new["commit"] else ""
    was = f" at {old['commit']}" if old.get("commit") else ""
    print(f"{name}: trainlab {old['version']}{was} -> {version}{where}", end="")
    print(" (with uncommitted changes)" if new["dirty"] else "")
    said = from_wheel(wheel, package, "changes", [old["contracts"], new["contracts"]])
    print("contracts:", *(said or ["no change"]), sep="\n  ")
    if history:
        print(f"commits ({len(history)}):", *history[:40], sep="\n  ")
    elif notes := changelog(carried, old["version"], version):
        print(f"changelog ({old['version']} -> {version}):", *notes[:60], sep="\n  ")
    if new["sha256"] == old["sha256"]:
        print("the wheel is the same: trainlab's code did not change")
    for rel in updated:
        write_atomic(project / rel, owned[rel])
        print(f"{rel}: updated")
    pyproject = project / "pyproject.toml"
    write_atomic(pyproject, pin(pyproject.read_text(), new).encode())
    write_atomic(project / str(new["wheel"]), data)
    stale = project / str(old["wheel"])
    if old["wheel"] != new["wheel"] and ours(project, stale):
        stale.unlink()  # the wheel this tool wrote before, and nothing else the record names
    write_atomic(record_path, json.dumps(new, indent=1).encode() + b"\n")
    for rel in kept:
        print(f"{rel}: you edited it, so it is left as it is; compare with the new one in")
        print(f"  {wheel.name}: {package}/project_files/{OWNED[rel]}")
    print("next: make install && make test (make upgrade runs them), then commit")


def fetch(spec: str, package: str, out: Path) -> tuple[Path, dict[str, Any]]:
    """The wheel ``spec`` names: a wheel file, or a version that pip downloads from the
    configured index (only that wheel: its dependencies come from the project's lock)."""
    if spec.endswith(".whl"):
        wheel = Path(spec).resolve()
        if not wheel.is_file():
            raise UpgradeError(f"{spec}: no such wheel file")
        return wheel, {"from": "wheel"}
    if not SEMVER.match(spec):
        raise UpgradeError(
            f"{spec!r} is neither a version (like 0.3.0), a wheel file nor a checkout"
        )
    got = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(out),
            f"{package}=={spec}",
        ],
        capture_output=True,
        text=True,
    )
    wheels = list(out.glob("*.whl"))
    if got.returncode != 0 or len(wheels) != 1:
        raise UpgradeError(f"pip could not download {package}=={spec}:\n{got.stderr[-2000:]}")
    return wheels[0], {"from": "index"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", help="a version, a wheel file or a checkout")
    parser.add_argument("--project", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    project = args.project.resolve()
    if not args.source:
        parser.error(
            "say where the new trainlab comes from: a version (FROM=0.3.0), a wheel file "
            "(FROM=dist/trainlab-0.3.0-py3-none-any.whl) or a checkout (FROM=../trainlab)"
        )
    if Path(args.source).is_dir():  # a checkout builds its wheel with its own script
        script = Path(args.source) / "scripts" / "thin_project.py"
        if not script.is_file():
            raise UpgradeError(f"{args.source} is a folder but not a trainlab checkout")
        command = [sys.executable, str(script), "upgrade", "--project", str(project)]
        return subprocess.run([*command, "--trainlab", args.source]).returncode
    record = project / RECORD
    if not record.is_file():
        raise UpgradeError(f"{project} has no {RECORD}: not a thin project")
    package = json.loads(record.read_text())["package"]
    with tempfile.TemporaryDirectory() as tmp:
        wheel, source = fetch(args.source, package, Path(tmp))
        upgrade(project, wheel, source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
