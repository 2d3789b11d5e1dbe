"""A thin project on trainlab, and its upgrades.

    python scripts/thin_project.py create --name myproj [--dest ../myproj]
    python scripts/thin_project.py upgrade --project <dir> [--trainlab <checkout>]
    make new-project NAME=myproj MODE=thin      (here)
    make upgrade [TRAINLAB=<checkout>]          (in the project)

``create`` writes ``templates/thin`` renamed to the project's name: its own package, ``conf/``
and tests, with trainlab pinned to a wheel built from this checkout (``vendor/``; installs
offline where the dependencies are). ``.trainlab/project.json`` records that wheel's commit and
hash, trainlab's contracts (:func:`trainlab.contracts.snapshot`) and what the files trainlab
owns (``Makefile``, ``constraints.txt``, ``.gitignore``) held when written.

``upgrade`` pins the project to a wheel of another checkout: it prints what changed in the
contracts (breaking changes first) and the commits in between, replaces the wheel, and updates
the files trainlab owns where the project did not edit them (those it did are named and left).
Nothing is overwritten that this tool did not write. Standard library only: it runs with the
project's Python, whose pip builds the wheel.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from new_project import check_name, fresh_history, private, staged, template_files

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "templates" / "thin"
EXAMPLE = "myproj"  # the template's package name, replaced by the project's
OWNED = ("Makefile", "constraints.txt", "trainlab.lock", ".gitignore")  # trainlab's, in a project
# where trainlab keeps the owned files it does not take from the template
SOURCES = {"constraints.txt": Path("constraints.txt"), "trainlab.lock": Path("locks", "thin.txt")}
RECORD = Path(".trainlab") / "project.json"


def package_of(root: Path) -> tuple[str, str]:
    """The distribution name and version in ``root``'s pyproject.toml."""
    text = (root / "pyproject.toml").read_text()
    name = re.search(r'^name = "([^"]+)"', text, re.M)
    version = re.search(r'^version = "([^"]+)"', text, re.M)
    if not name or not version:
        raise SystemExit(f"thin-project: error: {root} has no pyproject.toml name and version")
    return name.group(1), version.group(1)


def git_state(root: Path) -> tuple[str | None, bool]:
    """``root``'s commit and whether its tree differs from it (None where it is not git's)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if head.returncode != 0:
        return None, True
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True
    )
    return head.stdout.strip(), bool(status.stdout.strip())


def build_wheel(root: Path, out: Path) -> Path:
    """A wheel of the files that make ``root`` (as :func:`template_files` lists them, links
    kept), built by this Python's pip without fetching anything."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        for rel in template_files(root):
            if private(rel) or rel.parts[0] in ("tests", "docs", "templates", "scripts"):
                continue
            target = tree / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if (root / rel).is_symlink():
                target.symlink_to(os.readlink(root / rel))
            else:
                shutil.copy2(root / rel, target)
        built = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(out),
                str(tree),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"},  # the same files, the same bytes
        )
        if built.returncode != 0:
            raise SystemExit(
                f"thin-project: error: building {root}'s wheel failed:\n{built.stderr}"
            )
    (wheel,) = out.glob("*.whl")
    return wheel


def from_wheel(wheel: Path, package: str, call: str, given: object = None) -> Any:
    """``<package>.contracts.<call>(*given)`` as the wheel's trainlab answers it (``given`` and
    the answer travel as JSON). The wheel comes first on the path, before any trainlab that is
    installed; its dependencies come from this Python's site-packages (the signatures of the
    API need them)."""
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
        raise SystemExit(f"thin-project: error: {wheel.name}'s contracts.{call}:\n{said.stderr}")
    return json.loads(said.stdout)


def pin(text: str, record: dict[str, Any]) -> str:
    """pyproject.toml's ``"trainlab==..."`` pinned to the record's version."""
    package = record["package"]
    return re.sub(rf'"{package}==[^"]*"', f'"{package}=={record["version"]}"', text)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def pinned(root: Path, out: Path) -> dict[str, Any]:
    """Build ``root``'s wheel into ``out`` and describe it as the record holds it."""
    package, version = package_of(root)
    commit, dirty = git_state(root)
    wheel = build_wheel(root, out)
    return {
        "package": package,
        "version": version,
        "source": str(root),
        "commit": commit,
        "dirty": dirty,
        "wheel": f"vendor/{wheel.name}",
        "sha256": digest(wheel.read_bytes()),
        "contracts": from_wheel(wheel, package, "snapshot"),
    }


def owned_files(root: Path, name: str) -> dict[str, bytes]:
    """The files trainlab owns in a project, as ``root``'s trainlab writes them."""
    template = root / "templates" / "thin"
    files = {rel: (template / rel).read_bytes() for rel in OWNED if rel not in SOURCES}
    files = {rel: data.replace(EXAMPLE.encode(), name.encode()) for rel, data in files.items()}
    for rel, source in SOURCES.items():
        if (root / source).is_file():  # a trainlab older than its locks has none
            files[rel] = (root / source).read_bytes()
    return files


def create(name: str, dest: Path) -> None:
    with staged(dest, "thin-project") as stage:
        record = pinned(ROOT, stage / "vendor")
        prefix = len(TEMPLATE.relative_to(ROOT).parts)
        for listed in template_files(ROOT):
            if listed.parts[:prefix] != TEMPLATE.relative_to(ROOT).parts:
                continue
            path, rel = ROOT / listed, Path(*listed.parts[prefix:])
            if rel.as_posix() in OWNED:
                continue
            text = path.read_text().replace(EXAMPLE, name)
            if rel == Path("pyproject.toml"):  # the pin: this checkout's version
                text = pin(text, record)
            target = stage / str(rel).replace(EXAMPLE, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        owned = owned_files(ROOT, name)
        for name_in_project, data in owned.items():
            (stage / name_in_project).write_bytes(data)
        record["owned"] = {name_in_project: digest(data) for name_in_project, data in owned.items()}
        write_atomic(stage / RECORD, json.dumps(record, indent=1).encode() + b"\n")
        fresh_history(stage, name)
    lines = sum(len(p.read_text().splitlines()) for p in (dest / "src").rglob("*.py"))
    print(f"{name}: a thin project in {dest} ({lines} lines in src/), pinned to trainlab ", end="")
    print(f"{record['version']} at {record['commit'] or 'an unrecorded commit'}")
    print(f"next: cd {dest} && make train && make test")


def commits_between(root: Path, old: object, new: object) -> list[str]:
    if not old or not new or old == new:
        return []
    log = subprocess.run(
        ["git", "log", "--format=%h %s", f"{old}..{new}"], cwd=root, capture_output=True, text=True
    )
    if log.returncode != 0:
        return [f"(the commits between are not in {root}'s history)"]
    return [line[:120] for line in log.stdout.splitlines()]


def ours(project: Path, path: Path) -> bool:
    """A wheel in the project's ``vendor/``: what an upgrade may remove (a record names it, and
    a record is a file that may have been edited)."""
    vendor = (project / "vendor").resolve()
    return path.suffix == ".whl" and path.is_file() and path.resolve().parent == vendor


def upgrade(project: Path, trainlab: Path | None) -> None:
    record_path = project / RECORD
    if not record_path.is_file():
        raise SystemExit(f"thin-project: error: {project} has no {RECORD}: not a thin project")
    old = json.loads(record_path.read_text())
    root = (trainlab or Path(old["source"])).resolve()
    name, _ = package_of(project)
    with tempfile.TemporaryDirectory() as tmp:
        new = pinned(root, Path(tmp))
        wheel = Path(tmp) / Path(str(new["wheel"])).name
        written, owned = old.get("owned", {}), owned_files(root, name)
        kept, updated, new["owned"] = [], [], dict(written)
        for rel, data in owned.items():
            here = project / rel
            now = digest(here.read_bytes()) if here.is_file() else None
            if now != digest(data) and now is not None and now != written.get(rel):
                kept.append(rel)  # the project edited it: never overwritten
            elif now != digest(data):
                updated.append(rel)
            new["owned"][rel] = digest(data) if rel not in kept else written.get(rel)
        same = new["sha256"] == old["sha256"] and not updated
        if same and new["commit"] == old["commit"]:
            print(f"{name}: already pinned to this trainlab ({new['commit'] or new['sha256']})")
            return
        print(f"{name}: trainlab {old['version']} at {old['commit']} -> ", end="")
        print(f"{new['version']} at {new['commit']}{' (with uncommitted changes)' * new['dirty']}")
        changes = from_wheel(wheel, new["package"], "changes", [old["contracts"], new["contracts"]])
        print("contracts:", *(changes or ["no change"]), sep="\n  ")
        if commits := commits_between(root, old["commit"], new["commit"]):
            print(f"commits ({len(commits)}):", *commits[:40], sep="\n  ")
        if new["sha256"] == old["sha256"]:
            print("the wheel is the same: trainlab's code did not change")
        for rel in updated:
            write_atomic(project / rel, owned[rel])
            print(f"{rel}: updated")
        pyproject = project / "pyproject.toml"
        write_atomic(pyproject, pin(pyproject.read_text(), new).encode())
        write_atomic(project / str(new["wheel"]), wheel.read_bytes())
        stale = project / str(old["wheel"])
        if old["wheel"] != new["wheel"] and ours(project, stale):
            stale.unlink()  # the wheel this tool wrote before, and nothing else the record names
        write_atomic(record_path, json.dumps(new, indent=1).encode() + b"\n")
    for rel in kept:
        theirs = root / SOURCES.get(rel, Path("templates", "thin", rel))
        print(f"{rel}: you edited it, so it is left as it is; compare with {theirs}")
    print("next: make install && make test (make upgrade runs them), then commit")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("create", help="write a thin project")
    make.add_argument("--name", required=True)
    make.add_argument("--dest", type=Path, help="where to write it (default: ../<name>)")
    move = sub.add_parser("upgrade", help="pin a thin project to another trainlab checkout")
    move.add_argument("--project", type=Path, default=Path("."))
    move.add_argument("--trainlab", type=Path, help="default: the checkout it was made from")
    args = parser.parse_args(argv)
    if args.command == "create":
        name = check_name(args.name)
        create(name, (args.dest or ROOT.parent / name).resolve())
    else:
        upgrade(args.project.resolve(), args.trainlab)
    return 0


if __name__ == "__main__":
    sys.exit(main())
