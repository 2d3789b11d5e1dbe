"""Start a project from this template: a renamed copy with a fresh git history.

    python scripts/new_project.py --name myproj [--dest ../myproj] [--examples keep|drop]
    make new-project NAME=myproj [DEST=../myproj] [EXAMPLES=drop]

The copy holds the template's files (those git tracks or would track, or the whole tree without
build outputs where there is no git; never a ``.env``, a database, a key or a checkpoint), with
the package ``src/trainlab`` renamed to ``src/<name>`` and every ``trainlab`` in the code,
configs, Makefile and docs replaced (``TRAINLAB_`` variables become ``<NAME>_``, console
scripts ``<name>-train`` ...). ``--examples drop`` leaves out the examples: the example
experiments (all of ``conf/experiment`` but the default ``digits_mlp``), ``docs/``, the
generated example data (sequences, sound and graphs: :data:`EXAMPLE_MODULES`) and the graph
nets, with their configs, their names in the package and the README, and the ``graph`` extra;
the tests that use a dropped part skip themselves (``tests/conftest.py``). Nothing is
overwritten: the destination must not exist. Standard library only: runs before anything is
installed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import keyword
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

TEMPLATE = "trainlab"
ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", "logs", "outputs", "multirun", "wandb", "lightning_logs", "data"}
SKIP_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist"}
KEPT_EXPERIMENTS = {"digits_mlp.yaml"}
# The example parts --examples drop leaves out, with the configs that build them and their extra.
# The user's own data (CSV, image folders, text files, IDX files) and the sklearn sets stay.
EXAMPLE_MODULES = {("data", "synthetic"), ("data", "audio"), ("data", "graphs"), ("nets", "gnn")}
EXAMPLE_EXTRAS = {"graph"}
# Never copied, tracked or not: credentials, databases (an Optuna study), keys, checkpoints.
PRIVATE = re.compile(
    r"(^|/)(\.env(\..*)?|\.pgpass|\.netrc|[^/]*\.(db|sqlite3?|pem|key|ckpt|pt|pth))$"
)


def check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise SystemExit(
            f"new-project: error: NAME {name!r} must be a lowercase Python identifier "
            "(letters, digits, underscores; starting with a letter), e.g. myproj"
        )
    if name == TEMPLATE:
        raise SystemExit(f"new-project: error: NAME must differ from {TEMPLATE!r}")
    return name


def template_files(root: Path) -> list[Path]:
    """The files that make the template: git's (tracked and new, not ignored), else a walk."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        files = [Path(p) for p in listed.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        files = [
            p.relative_to(root)
            for p in root.rglob("*")
            if (p.is_file() or p.is_symlink())
            and not any(q.is_symlink() for q in p.parents if q != root and root in q.parents)
            and p.relative_to(root).parts[0] not in SKIP_DIRS
            and not SKIP_PARTS & set(p.parts)
            and not p.name.endswith(".egg-info")
        ]
    return sorted(f for f in files if (root / f).is_file() or (root / f).is_symlink())


def private(path: Path) -> bool:
    """A file that may hold a credential or someone's data: never copied."""
    return bool(PRIVATE.search(path.as_posix()))


def example_imports(package: str, text: str) -> dict[str, set[str]]:
    """The names that a package's ``__init__`` (``text``) imports from each example module."""
    found: dict[str, set[str]] = {}
    for module, names in re.findall(
        rf"^from {TEMPLATE}\.{package}\.(\w+) import (.+)$", text, re.M
    ):
        if (package, module) in EXAMPLE_MODULES:
            found[module] = {n.strip() for n in names.split(",")}
    return found


@functools.cache
def example_classes(root: Path) -> frozenset[str]:
    """The classes :data:`EXAMPLE_MODULES` define, as the packages' ``__init__`` import them."""
    return frozenset(
        name
        for package in ("data", "nets")
        for names in example_imports(
            package, (root / "src" / TEMPLATE / package / "__init__.py").read_text()
        ).values()
        for name in names
    )


def example_config(root: Path, path: Path, classes: frozenset[str]) -> bool:
    """Whether ``conf/data/x.yaml`` or ``conf/net/x.yaml`` builds an example class (itself, or
    through the config its defaults list extends)."""
    text = (root / path).read_text()
    if target := re.search(r"^_target_: \S+\.(\w+)\s*$", text, re.M):
        return target.group(1) in classes
    parents = re.findall(r"^  - (\w+)\s*(?:#.*)?$", text, re.M)
    parent = next((p for p in parents if not p.startswith("_")), None)
    return parent is not None and example_config(root, path.with_name(f"{parent}.yaml"), classes)


def wanted(path: Path, examples: str, root: Path = ROOT) -> bool:
    if examples == "keep":
        return True
    if path.parts[:2] == ("conf", "experiment") and path.name not in KEPT_EXPERIMENTS:
        return False
    if path.parts[:2] in (("conf", "data"), ("conf", "net")) and path.suffix == ".yaml":
        return not example_config(root, path, example_classes(root))
    if path.parts[:2] == ("src", TEMPLATE) and len(path.parts) == 4 and path.suffix == ".py":
        return (path.parts[2], path.stem) not in EXAMPLE_MODULES
    return path.parts[0] != "docs"


def drop_examples(rel: Path, text: str, root: Path) -> str:
    """Names of the dropped parts, taken out of the files that list them: the packages'
    imports and ``__all__``, the README's config-groups rows (its tests check them against
    ``conf/``), the extras in pyproject.toml and ``extras.py``."""
    if rel == Path("README.md"):
        kept = ", ".join(f"`{Path(e).stem}`" for e in sorted(KEPT_EXPERIMENTS))
        text = re.sub(r"^(\| `experiment` \| )[^|]*( \|)", rf"\g<1>{kept}\2", text, flags=re.M)
        classes = example_classes(root)
        for group in ("data", "net"):
            gone = [
                p.stem
                for p in sorted((root / "conf" / group).glob("*.yaml"))
                if example_config(root, p.relative_to(root), classes)
            ]
            for option in gone:  # `name` or `name` (default), between commas
                text = re.sub(
                    rf"^(\| `{group}` \|.*?)(?:, `{option}`(?= |,)|`{option}`, )",
                    r"\1",
                    text,
                    flags=re.M,
                )
        return text
    if rel.parts[:2] == ("src", TEMPLATE) and rel.name == "__init__.py" and len(rel.parts) == 4:
        package = rel.parts[2]
        for module, names in example_imports(package, text).items():
            text = re.sub(
                rf"^from {TEMPLATE}\.{package}\.{module} import .+\n", "", text, flags=re.M
            )
            for name in names:
                text = re.sub(rf'^    "{name}",\n', "", text, flags=re.M)
                text = re.sub(rf'"{name}", |, "{name}"(?=\])', "", text)
        return text
    for extra in EXAMPLE_EXTRAS:
        if rel == Path("pyproject.toml"):
            text = re.sub(rf"^{extra} = \[.*\n", "", text, flags=re.M)
            text = re.sub(rf"(\[)(?:{extra},)|,{extra}(?=[,\]])", r"\1", text)
        elif rel == Path("src", TEMPLATE, "extras.py"):
            text = re.sub(rf'^    "{extra}": .*\n', "", text, flags=re.M)
    return text


def rename(text: str, name: str) -> str:
    return text.replace(TEMPLATE, name).replace(TEMPLATE.upper(), name.upper())


# The thin project's template names its package (``myproj`` here, its pyproject's name) and
# ``thin_project.py`` replaces that name with the thin project's. In a fork whose name holds it
# (``myproj``, the name the help suggests), the fork's own imports would be replaced too; there
# the template's name becomes one the fork's does not hold, before ``trainlab`` is renamed.
THIN_PARTS = (Path("templates", "thin"), Path("scripts", "thin_project.py"))
THIN_ALTERNATIVES = ("yourproj", "thinproj", "exampleproj")


def thin_placeholder(root: Path) -> str:
    """The thin template's package name in ``root`` (a fork may have renamed it)."""
    template = root / "templates" / "thin" / "pyproject.toml"
    found = (
        re.search(r'^name = "([^"]+)"', template.read_text(), re.M) if template.is_file() else None
    )
    return found.group(1) if found else "myproj"


def thin_example(name: str, placeholder: str = "myproj") -> str:
    """The thin template's package name in a fork named ``name``."""
    for candidate in (placeholder, *THIN_ALTERNATIVES):
        if candidate not in name:
            return candidate
    raise SystemExit(f"new-project: error: NAME {name!r} holds every name of the thin template")


def renamed(rel: Path, text: str, name: str, placeholder: str = "myproj") -> str:
    """``text`` (a file's or one part of its path) in the fork: ``trainlab`` renamed, and in
    the thin template's files its package name where the fork's would hold it."""
    if any(rel == part or part in rel.parents for part in THIN_PARTS):
        text = text.replace(placeholder, thin_example(name, placeholder))
    return rename(text, name)


def copy(root: Path, dest: Path, name: str, examples: str) -> int:
    count, placeholder = 0, thin_placeholder(root)
    for rel in template_files(root):
        if private(rel):
            print(f"new-project: not copied (may hold a secret or data): {rel}", file=sys.stderr)
            continue
        if not wanted(rel, examples, root):
            continue
        # src/trainlab/ and src/hydra_plugins/trainlab_*/ (the configs name them renamed)
        target = dest / Path(*(renamed(rel, part, name, placeholder) for part in rel.parts))
        target.parent.mkdir(parents=True, exist_ok=True)
        if (root / rel).is_symlink():  # src/trainlab/conf -> ../../conf
            target.symlink_to(rename(os.readlink(root / rel), name))
            count += 1
            continue
        data = (root / rel).read_bytes()
        if examples == "drop" and rel.suffix in (".md", ".py", ".toml"):
            data = drop_examples(rel, data.decode("utf-8"), root).encode("utf-8")
        try:
            target.write_text(
                renamed(rel, data.decode("utf-8"), name, placeholder), encoding="utf-8"
            )
        except UnicodeDecodeError:  # images and other binary files as they are
            target.write_bytes(data)
        shutil.copymode(root / rel, target)
        count += 1
    return count


def fresh_history(dest: Path, name: str) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True)

    git("init", "-q")
    git("add", "-A")
    who = subprocess.run(["git", "config", "user.name"], cwd=dest, capture_output=True, text=True)
    identity = (
        []
        if who.stdout.strip()
        else ["-c", f"user.name={name}", "-c", f"user.email={name}@localhost"]
    )
    git(*identity, "commit", "-q", "-m", f"Start {name} from the {TEMPLATE} template")


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so that staged() removes what it made


@contextlib.contextmanager
def staged(dest: Path, tool: str) -> Iterator[Path]:
    """A hidden folder beside ``dest`` to write the project into, renamed to ``dest`` once it
    is whole. On an error, Ctrl-C or SIGTERM, it is removed with the folders made for it: a
    project is there whole or not at all (a SIGKILL leaves the hidden ``.<name>-*`` folder,
    which no later run reads or collides with). ``dest`` must not exist: nothing is
    overwritten."""
    if dest.exists():
        raise SystemExit(
            f"{tool}: error: {dest} exists; choose another DEST (nothing is overwritten)"
        )
    made = [p for p in reversed(dest.parents) if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield stage
        umask = os.umask(0)
        os.umask(umask)
        stage.chmod(0o777 & ~umask)  # a folder as mkdir makes it, not mkdtemp's private one
        stage.rename(dest)
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(stage, ignore_errors=True)
        if not dest.exists():
            for folder in reversed(made):
                folder.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="the new package name, e.g. myproj")
    parser.add_argument("--dest", type=Path, help="where to write it (default: ../<name>)")
    parser.add_argument("--examples", choices=("keep", "drop"), default="keep")
    parser.add_argument("--no-git", action="store_true", help="do not start a git history")
    args = parser.parse_args(argv)
    name = check_name(args.name)
    dest = (args.dest or ROOT.parent / name).resolve()
    with staged(dest, "new-project") as stage:
        count = copy(ROOT, stage, name, args.examples)
        if not args.no_git:
            fresh_history(stage, name)
    print(f"{name}: {count} files in {dest}\nnext: cd {dest} && make test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
