"""A thin project on trainlab, and its upgrades from a checkout.

    python scripts/thin_project.py create --name myproj [--dest ../myproj]
    python scripts/thin_project.py upgrade --project <dir> [--trainlab <checkout>]
    make new-project NAME=myproj MODE=thin      (here)
    make upgrade FROM=<checkout>                (in the project; or FROM=<version | wheel>)

``create`` writes ``templates/thin`` renamed to the project's name: its own package, ``conf/``
and tests, with trainlab pinned to a wheel built from this checkout (``vendor/``; installs
offline where the dependencies are). ``.trainlab/project.json`` records that wheel's version,
commit and hash, trainlab's contracts and config surface (:func:`trainlab.contracts.snapshot`)
and what the files trainlab owns (``Makefile``, ``.gitignore``, ``constraints.txt``,
``trainlab.lock``) held when written; no path of this machine.

``upgrade`` builds this checkout's wheel and hands it to the upgrader that wheels carry
(``src/trainlab/upgrade.py``, loaded from this checkout: the project's own trainlab may predate
it), with the commits in between. Standard library only: it runs with the project's Python,
whose pip builds the wheel.
"""

from __future__ import annotations

import argparse
import importlib.util
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


def _upgrader(root: Path) -> Any:
    """``root``'s ``src/<package>/upgrade.py``, loaded as a file: standard library only, it
    imports nothing of the trainlab that the running Python has installed."""
    package, _ = package_of(root)
    path = root / "src" / package / "upgrade.py"
    spec = importlib.util.spec_from_file_location(f"_{package}_upgrade", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise SystemExit(f"thin-project: error: {root} has no {path.relative_to(root)}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    return module


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


def source_tree(root: Path, tree: Path) -> None:
    """The files that make ``root``'s package (as :func:`template_files` lists them, links
    kept), with the snapshot of its contracts and config surface written into
    ``project_files/snapshot.json``: what a wheel or sdist is built from."""
    for rel in template_files(root):
        if private(rel) or rel.parts[0] in ("tests", "docs", "scripts"):
            continue
        target = tree / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if (root / rel).is_symlink():
            target.symlink_to(os.readlink(root / rel))
        elif (root / rel).is_file():
            shutil.copy2(root / rel, target)
    package, _ = package_of(root)
    snapshot = _upgrader(root).from_wheel(tree / "src", package, "snapshot")
    (tree / "src" / package / "project_files" / "snapshot.json").write_text(
        json.dumps(snapshot, indent=1) + "\n"
    )


REPRODUCIBLE = {"SOURCE_DATE_EPOCH": "315532800"}  # the same files, the same bytes


def build_wheel(root: Path, out: Path) -> Path:
    """A wheel of ``root`` (:func:`source_tree`), built by this Python's pip without fetching
    anything."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        source_tree(root, tree)
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
            env={**os.environ, **REPRODUCIBLE},
        )
        if built.returncode != 0:
            raise SystemExit(
                f"thin-project: error: building {root}'s wheel failed:\n{built.stderr}"
            )
    (wheel,) = out.glob("*.whl")
    return wheel


def pinned(root: Path, out: Path) -> tuple[Path, dict[str, Any]]:
    """Build ``root``'s wheel into ``out``: the wheel, and where it came from as the record
    says it (its commit; never a path of this machine)."""
    commit, dirty = git_state(root)
    return build_wheel(root, out), {"from": "checkout", "commit": commit, "dirty": dirty}


def create(name: str, dest: Path) -> None:
    up = _upgrader(ROOT)
    package, version = package_of(ROOT)
    with staged(dest, "thin-project") as stage:
        wheel, source = pinned(ROOT, stage / "vendor")
        carried = up.project_files(wheel, package)
        record = {
            "package": package,
            "version": version,
            **source,
            "wheel": f"vendor/{wheel.name}",
            "sha256": up.digest(wheel.read_bytes()),
            "contracts": up.snapshot_of(wheel, package, carried),
        }
        prefix = len(TEMPLATE.relative_to(ROOT).parts)
        owned = up.owned_files(carried, name)
        for listed in template_files(ROOT):
            if listed.parts[:prefix] != TEMPLATE.relative_to(ROOT).parts:
                continue
            path, rel = ROOT / listed, Path(*listed.parts[prefix:])
            if rel.as_posix() in owned:
                continue
            text = path.read_text().replace(EXAMPLE, name)
            if rel == Path("pyproject.toml"):  # the pin: this checkout's version
                text = up.pin(text, record)
            target = stage / str(rel).replace(EXAMPLE, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        for name_in_project, data in owned.items():
            (stage / name_in_project).write_bytes(data)
        record["owned"] = {rel: up.digest(data) for rel, data in owned.items()}
        up.write_atomic(stage / up.RECORD, json.dumps(record, indent=1).encode() + b"\n")
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


def upgrade(project: Path, trainlab: Path | None) -> None:
    record = project / ".trainlab" / "project.json"
    if not record.is_file():
        raise SystemExit(f"thin-project: error: {project} has no {record}: not a thin project")
    old = json.loads(record.read_text())
    if trainlab is None and "source" not in old:  # records no longer name a checkout
        raise SystemExit("thin-project: error: name the checkout: --trainlab <checkout>")
    root = (trainlab or Path(old["source"])).resolve()
    up = _upgrader(root)
    with tempfile.TemporaryDirectory() as tmp:
        wheel, source = pinned(root, Path(tmp))
        history = commits_between(root, old.get("commit"), source["commit"])
        up.upgrade(project, wheel, source, history)


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
