"""What a fork gets for free: CI that matches .ci/run, offline pre-commit hooks, the files a
project is expected to have."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT


def test_the_github_workflow_runs_what_ci_runs() -> None:
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    local = [re.sub(r"\s+#.*", "", ln) for ln in ci if ln.startswith("make ")]
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = [s["run"] for s in workflow["jobs"]["test"]["steps"] if "run" in s]
    assert steps == local
    assert "make test" in steps  # the README's test command


def test_a_fork_has_a_license_a_changelog_and_a_citation() -> None:
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"


@pytest.mark.slow
def test_pre_commit_hooks_run_offline_and_catch_a_badly_formatted_file(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    pre_commit = bin_dir / "pre-commit"
    if not pre_commit.exists():
        pytest.skip("pre-commit is not installed (make install installs it)")
    repo = tmp_path / "fork"
    (repo / "src" / "pkg").mkdir(parents=True)
    for name in (".pre-commit-config.yaml", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    (repo / ".venv").symlink_to(bin_dir.parent)
    (repo / "src" / "pkg" / "__init__.py").write_text('"""A package."""\n')
    (repo / "scripts").mkdir()  # mypy checks src/ and scripts/ (pyproject.toml)
    (repo / "scripts" / "tool.py").write_text('"""A script."""\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PRE_COMMIT_HOME": str(tmp_path / "pc")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)

    run("git", "init", "-q")
    run("git", "add", "-A")
    good = run(str(pre_commit), "run", "--all-files")
    assert good.returncode == 0, good.stdout + good.stderr
    (repo / "src" / "pkg" / "bad.py").write_text("def f( x ):\n  return x\n")
    run("git", "add", "-A")
    bad = run(str(pre_commit), "run", "--all-files")
    assert bad.returncode == 1 and "ruff format" in bad.stdout and "Failed" in bad.stdout
    assert (repo / "src" / "pkg" / "bad.py").read_text() == "def f(x):\n    return x\n"


def _new_project(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "new_project.py"), *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )


def test_new_project_renames_everything_and_refuses_to_overwrite(tmp_path: Path) -> None:
    dest = tmp_path / "forkedproj"
    made = _new_project(tmp_path, "--name", "forkedproj", "--dest", str(dest), "--examples", "drop")
    assert made.returncode == 0, made.stderr
    assert (dest / "src" / "forkedproj" / "train.py").is_file() and not (
        dest / "src" / "trainlab"
    ).exists()
    assert [p.name for p in (dest / "conf" / "experiment").iterdir()] == ["digits_mlp.yaml"]
    package = dest / "src" / "forkedproj"
    for gone in ("data/graphs.py", "data/synthetic.py", "data/audio.py", "nets/gnn.py"):
        assert not (package / gone).exists(), gone  # the example parts, really left out
    for gone in ("data/signals.yaml", "data/karate.yaml", "data/tones.yaml", "net/gat.yaml"):
        assert not (dest / "conf" / gone).exists(), gone
    assert (dest / "conf" / "data" / "csv.yaml").is_file()  # the user's own data stays
    assert "graph" not in (dest / "pyproject.toml").read_text()  # nor their extra
    assert '"graph"' not in (package / "extras.py").read_text()
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import forkedproj.data, forkedproj.nets; print(forkedproj.nets.__all__)",
        ],
        env={"PYTHONPATH": str(dest / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr
    assert "GNN" not in imported.stdout and "MLP" in imported.stdout
    left = [
        str(p.relative_to(dest))
        for p in dest.rglob("*")
        if p.is_file() and ".git" not in p.parts and b"trainlab" in p.read_bytes().lower()
    ]
    assert left == []
    named = [str(p.relative_to(dest)) for p in dest.rglob("*") if "trainlab" in p.name.lower()]
    assert named == []  # src/hydra_plugins/trainlab_*/ too: the configs name them renamed
    assert (dest / "src" / "hydra_plugins" / "forkedproj_slurm" / "__init__.py").is_file()
    pyproject = (dest / "pyproject.toml").read_text()
    assert (
        'name = "forkedproj"' in pyproject
        and 'forkedproj-train = "forkedproj.train:main"' in pyproject
    )
    log = subprocess.run(["git", "log", "--oneline"], cwd=dest, capture_output=True, text=True)
    assert len(log.stdout.splitlines()) == 1  # a fresh history of one commit
    again = _new_project(tmp_path, "--name", "forkedproj", "--dest", str(dest))
    assert again.returncode != 0 and "exists; choose another DEST" in again.stderr
    bad = _new_project(tmp_path, "--name", "My-Proj", "--dest", str(tmp_path / "x"))
    assert bad.returncode != 0 and "must be a lowercase Python identifier" in bad.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_new_project_stopped_midway_leaves_nothing_behind(tmp_path: Path, signum: int) -> None:
    """Stopped while it writes the copy (SIGTERM, Ctrl-C), it removes what it made, the
    folders above DEST included: a later run with the same DEST works."""
    dest = tmp_path / "made" / "for" / "forkedproj"
    script = ROOT / "scripts" / "new_project.py"
    started = subprocess.Popen(
        [sys.executable, str(script), "--name", "forkedproj", "--dest", str(dest)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a shell's background job (`make test &`) ignores Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not list(dest.parent.glob(".forkedproj-*/*")) and time.monotonic() < deadline:
        time.sleep(0.005)  # until it has begun to write
    started.send_signal(signum)
    assert started.wait(60) != 0, started.stderr.read() if started.stderr else ""
    assert not dest.exists() and not (tmp_path / "made").exists()
    assert _new_project(tmp_path, "--name", "forkedproj", "--dest", str(dest)).returncode == 0
    assert (dest / "src" / "forkedproj" / "train.py").is_file()


def _new_project_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("new_project", ROOT / "scripts/new_project.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_fork_named_like_the_thin_template_keeps_the_two_names_apart(tmp_path: Path) -> None:
    module = _new_project_module()
    template, thin = module.TEMPLATE, module.thin_placeholder(ROOT)  # (trainlab, myproj) here
    src = tmp_path / "src"
    files = {
        f"templates/thin/src/{thin}/data.py": f"from {template}.runtime import X\n"
        f"from {thin} import Y\n",
        "templates/thin/pyproject.toml": f'name = "{thin}"\n',
        "scripts/thin_project.py": f'EXAMPLE = "{thin}"\n',
        "README.md": f"see {template}\n",
    }
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    alternative = module.thin_example(thin, thin)
    assert alternative not in (thin, template)
    for name, now in ((thin, alternative), (f"{thin}_v2", alternative), ("spirals", thin)):
        dest = tmp_path / name
        module.copy(src, dest, name, "keep")
        data = dest / "templates" / "thin" / "src" / now / "data.py"
        assert data.read_text() == f"from {name}.runtime import X\nfrom {now} import Y\n"
        assert (dest / "scripts/thin_project.py").read_text() == f'EXAMPLE = "{now}"\n'
        assert (dest / "README.md").read_text() == f"see {name}\n"
    with pytest.raises(SystemExit, match="holds every name of the thin template"):
        module.thin_example("myproj_yourproj_thinproj_exampleproj")


def test_new_project_never_copies_credentials_or_data(tmp_path: Path) -> None:
    """A user's .env, an Optuna study database and a checkpoint, untracked or even tracked,
    stay out of the new project and its first commit."""
    module = _new_project_module()
    src = tmp_path / "src"
    (src / "conf").mkdir(parents=True)
    held = {
        "conf/train.yaml": "seed: 1\n",
        "mine.py": "x = 1\n",
        ".env": "WANDB_API_KEY=sentinel-key\n",
        "study.db": "sqlite",
        "conf/.env.local": "PGPASSWORD=sentinel\n",
        "best.ckpt": "weights",
    }
    for name, text in held.items():
        (src / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=src, check=True)
    subprocess.run(["git", "add", "-f", "conf/train.yaml", "study.db"], cwd=src, check=True)
    dest = tmp_path / "dest"
    module.copy(src, dest, "myproj", "keep")
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == ["conf/train.yaml", "mine.py"]
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {".env", "*.db", "*.ckpt"} <= set(ignored)


@pytest.mark.slow
def test_the_new_projects_own_tests_pass(tmp_path: Path) -> None:
    """Under the name the help suggests, which is also the thin template's: the fork's thin
    projects import the fork (``myproj``) and name their own package apart."""
    dest = tmp_path / "myproj"
    made = _new_project(tmp_path, "--name", "myproj", "--dest", str(dest), "--examples", "drop")
    assert made.returncode == 0, made.stderr
    thin = dest / "templates" / "thin"
    assert (thin / "src" / "yourproj" / "data.py").is_file()
    assert "from myproj." in (thin / "src" / "yourproj" / "data.py").read_text()
    assert 'EXAMPLE = "yourproj"' in (dest / "scripts" / "thin_project.py").read_text()
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(dest / "src"),  # the fork's package, not the installed template
        "WANDB_MODE": "offline",
    }
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider"],
        cwd=dest,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout and "skipped" in tests.stdout  # dropped examples skip


def test_no_example_part_is_missing_here() -> None:
    """Every example part exists in trainlab, so no test skips as dropped. A project made with
    EXAMPLES=drop skips this test (it names dropped parts) and the tests that use them."""
    from tests.conftest import dropped

    named = "data=signals net=gcn experiment=karate_gcn trainlab.data.graphs trainlab.nets.gnn"
    assert dropped(named) == []
    absent = ["data" + "=nowhere", "trainlab.nets" + ".Nothing"]  # split: or this test skips
    assert dropped(" ".join(absent)) == absent
