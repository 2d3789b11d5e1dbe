"""A thin project (``make new-project MODE=thin``): only its own parts, trainlab a pinned wheel,
its parts checked by trainlab's contract tests, and upgrades that reach it."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import trainlab
from tests.conftest import ROOT, copy_checkout
from trainlab import contracts

SCRIPT = ROOT / "scripts" / "thin_project.py"
NAME = "spiralz"
# The first commit that makes thin projects: the upgrade test makes its project there.
FIRST_THIN_COMMIT = "f58b809f47814db13f3295959281cdd93fb37edb"


def _thin(
    tmp_path: Path, *args: str, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)},
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One thin project for the tests that only read it."""
    tmp_path = tmp_path_factory.mktemp("thin")
    dest = tmp_path / NAME
    made = _thin(tmp_path, "create", "--name", NAME, "--dest", str(dest))
    assert made.returncode == 0, made.stderr
    return dest


@pytest.fixture
def on_path(project: Path) -> Iterator[Path]:
    """The project's package importable in this process, as an installed project's is."""
    from hydra.core.hydra_config import HydraConfig

    sys.path.insert(0, str(project / "src"))
    yield project
    sys.path.remove(str(project / "src"))
    HydraConfig.instance().cfg = None  # trainlab.testing.compose set the project's
    for module in [m for m in sys.modules if m == NAME or m.startswith(f"{NAME}.")]:
        del sys.modules[module]


def test_a_thin_project_holds_only_its_parts_and_pins_trainlab(project: Path) -> None:
    src = list((project / "src").rglob("*.py"))
    assert {p.parent.name for p in src} == {NAME}  # no copy of trainlab
    assert sum(len(p.read_text().splitlines()) for p in src) < 1000
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("trainlab*")) == [
        "trainlab.lock",  # every dependency pinned and hashed: make install reads nothing else
        f"vendor/trainlab-{trainlab.__version__}-py3-none-any.whl",
    ]
    assert (project / "trainlab.lock").read_bytes() == (ROOT / "locks" / "thin.txt").read_bytes()
    record = json.loads((project / ".trainlab" / "project.json").read_text())
    assert record["contracts"] == contracts.snapshot()
    assert f'"trainlab=={record["version"]}"' in (project / "pyproject.toml").read_text()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        assert record["commit"] == head.stdout.strip()
    listed = subprocess.run(
        ["unzip", "-l", str(project / record["wheel"])], capture_output=True, text=True
    ).stdout
    assert "trainlab/conf/train.yaml" in listed and "trainlab/conf/__init__.py" in listed
    assert "tests/" not in listed
    log = subprocess.run(["git", "log", "--oneline"], cwd=project, capture_output=True, text=True)
    assert len(log.stdout.splitlines()) == 1


def test_its_parts_meet_trainlabs_contracts(on_path: Path, tmp_path: Path) -> None:
    from trainlab.testing import check_parts, compose

    conf = importlib.import_module(NAME).CONF
    assert conf == on_path / "conf"
    cfg = compose(conf, NAME, ["callbacks.progress_bar=null"], tmp_path / "out")
    dm, model = check_parts(cfg)
    assert type(dm).__module__ == f"{NAME}.data" and type(model).__module__ == f"{NAME}.models"
    assert type(model.net).__module__ == f"{NAME}.nets"


def test_the_contract_checks_name_what_a_part_gets_wrong(on_path: Path, tmp_path: Path) -> None:
    """A DataModule whose input_shape disagrees with its batches: the net would be built for
    the wrong input. check_parts names both shapes."""
    from trainlab.testing import check_parts, compose

    data = importlib.import_module(f"{NAME}.data")

    class WrongShape(data.SpiralsDataModule):  # type: ignore[name-defined,misc]
        @property
        def input_shape(self) -> tuple[int, ...]:
            return (3,)

    data.WrongShape = WrongShape
    cfg = compose(on_path / "conf", NAME, [f"data._target_={NAME}.data.WrongShape"], tmp_path)
    with pytest.raises(AssertionError, match=r"shape \(2,\), input_shape says \(3,\)"):
        check_parts(cfg)


def test_contract_changes_name_the_breaking_ones_first() -> None:
    old = contracts.snapshot()
    new = json.loads(json.dumps(old))
    datamodule = new["DataModule"]
    removed = datamodule.pop(0)["name"]
    optional = next(m for m in datamodule if not m["required"])
    optional["required"] = True
    datamodule.append({"name": "sampler()", "required": False, "meaning": "a sampler"})
    new["net"][0]["meaning"] = "something else"
    said = contracts.changes(old, new)
    assert said[0] == (
        f"breaking: DataModule: `{optional['name']}` is now required: {optional['meaning']}"
    )
    assert not any(line.startswith("breaking") for line in said[1:])
    # what trainlab stops reading breaks nothing: the project's member is simply not called
    assert f"DataModule: `{removed}` no longer read by trainlab (yours may stay)" in said
    assert "DataModule: `sampler()` added, optional: a sampler" in said
    assert any(line.startswith(f"net: `{new['net'][0]['name']}` now means") for line in said)
    assert contracts.changes(old, old) == []


def test_config_surface_changes_name_what_a_project_would_trip_on() -> None:
    """Groups, options, keys and defaults: a config or key gone, or a key that must now be
    given, breaks a project's configs and commands; an addition or a new default does not,
    and a default's change is said (a run that relied on it trains differently)."""
    old = contracts.snapshot()
    surface = {c["name"]: c["keys"] for c in old["config"]}
    assert surface["train"]["seed"] == "42" and surface["net/cnn"]  # read from conf/
    assert {"net/mlp", "trainer/ddp", "hydra/sweeper/pruner/median"} <= surface.keys()
    assert all(not k.startswith("defaults") for keys in surface.values() for k in keys)
    new = json.loads(json.dumps(old))
    configs = {c["name"]: c for c in new["config"]}
    new["config"].remove(configs["net/cnn"])  # an option gone
    new["config"] = [c for c in new["config"] if not c["name"].startswith("ablation/")]
    configs["train"]["keys"].pop("seed")  # a key gone
    configs["train"]["keys"]["run_name"] = '"???"'  # must now be given
    configs["net/mlp"]["keys"]["dropout"] = "0.5"  # a default changed
    configs["net/mlp"]["keys"]["width_multiplier"] = "1"  # a key added
    new["config"].append({"name": "warmup/linear", "keys": {"steps": "100"}})
    said = contracts.changes(old, new)
    breaking = [line for line in said if line.startswith("breaking: ")]
    assert sorted(breaking) == sorted(
        [
            "breaking: config: group `ablation` removed",
            *(
                f"breaking: config: `ablation={n.split('/')[1]}` removed"
                for n in surface
                if n.startswith("ablation/")
            ),
            "breaking: config: `net=cnn` removed",
            "breaking: config: `train` key `seed` removed (setting it fails)",
            "breaking: config: `train` key `run_name` must now be given",
        ]
    )
    was = surface["net/mlp"]["dropout"]
    assert f"config: `net=mlp` key `dropout` default {was} -> 0.5" in said
    assert "config: `net=mlp` key `width_multiplier` added, default 1" in said
    assert "config: `warmup=linear` added" in said and "config: group `warmup` added" in said
    assert said[: len(breaking)] == breaking  # the breaking ones first
    without = {k: v for k, v in old.items() if k != "config"}
    assert contracts.changes(without, old) == ["config: the old version recorded no config surface"]


def test_api_changes_say_whether_a_projects_calls_still_fit() -> None:
    """The signatures of what a project calls: a new optional parameter fits its calls, a
    parameter removed or made required does not; a project recorded without them gets none."""

    def v1(cfg: object, margin: float = 0.05) -> None: ...
    def more(cfg: object, margin: float = 0.05, seeds: int = 1) -> None: ...
    def fewer(cfg: object) -> None: ...
    def required(cfg: object, margin: float) -> None: ...

    old = {"api": [contracts.call_shape("check", v1), contracts.call_shape("gone", v1)]}
    for version, fits in ((more, True), (fewer, False), (required, False)):
        said = contracts.changes(old, {"api": [contracts.call_shape("check", version)]})
        now = contracts.call_shape("check", version)["signature"]
        line = f"api: `check(cfg, margin=0.05)` is now `check{now}`"
        assert "breaking: api: `gone` removed" in said
        assert (line in said) if fits else (f"breaking: {line}" in said), said
    said = contracts.changes({"DataModule": []}, {"DataModule": [], **old})
    assert said == ["api: the old version recorded no signatures; the commits say what changed"]
    assert [e["name"] for e in contracts.snapshot()["api"]] == list(contracts.API)


def test_a_failed_create_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    thin = importlib.import_module("thin_project")

    def broken(root: Path, out: Path) -> Path:
        out.mkdir(parents=True)
        (out / "half.whl").write_bytes(b"")
        raise SystemExit("thin-project: error: building failed")

    monkeypatch.setattr(thin, "build_wheel", broken)
    with pytest.raises(SystemExit, match="building failed"):
        thin.create(NAME, tmp_path / "new" / "deeper" / NAME)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "taken").mkdir()
    again = _thin(tmp_path, "create", "--name", NAME, "--dest", str(tmp_path / "taken"))
    assert again.returncode != 0 and "exists" in again.stderr
    assert list((tmp_path / "taken").iterdir()) == []
    bad = _thin(tmp_path, "create", "--name", "My-Proj", "--dest", str(tmp_path / "x"))
    assert bad.returncode != 0 and "lowercase Python identifier" in bad.stderr


def test_an_upgrade_removes_no_file_its_record_points_outside_vendor(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The record is a file of the project, and may have been edited: the old wheel it names is
    removed only where it is a wheel in vendor/."""
    from trainlab import upgrade

    dest = tmp_path / NAME
    shutil.copytree(project, dest, symlinks=True)
    (wheel,) = (project / "vendor").glob("*.whl")
    victim = tmp_path / "notes.whl"
    victim.write_text("someone's file")
    record_path = dest / ".trainlab" / "project.json"
    record = json.loads(record_path.read_text())
    record.update(wheel="../notes.whl", sha256="0" * 64)
    record_path.write_text(json.dumps(record))
    upgrade.upgrade(dest, wheel, {"from": "wheel"})
    assert "trainlab.lock" not in capsys.readouterr().out  # the owned files were as written
    assert victim.read_text() == "someone's file"
    assert (dest / "vendor" / wheel.name).is_file()
    assert json.loads(record_path.read_text())["sha256"] == upgrade.digest(wheel.read_bytes())


def _env(project: Path, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(project / "src"),
        "WANDB_MODE": "offline",
    }


@pytest.mark.slow
def test_a_thin_project_trains_evaluates_and_trusts_only_its_configs(
    project: Path, tmp_path: Path
) -> None:
    """From the command line: train and eval through the project's entry points; trainlab's own
    eval, which does not know the project's conf/, refuses to build its run."""
    work = tmp_path / "work"
    work.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *args],
            cwd=work,
            env=_env(project, tmp_path),
            capture_output=True,
            text=True,
            timeout=600,
        )

    helped = run(f"{NAME}.train", "--help")
    assert helped.returncode == 0 and f"python -m {NAME}.train" in helped.stdout
    assert "spirals" in helped.stdout and "digits" in helped.stdout  # its options and trainlab's
    trained = run(f"{NAME}.train", "trainer.max_epochs=3", "callbacks.progress_bar=null")
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run_dir,) = (work / "logs" / NAME / "runs").iterdir()
    config = (run_dir / "config.yaml").read_text()
    assert f"_target_: {NAME}.data.SpiralsDataModule" in config
    env = json.loads((run_dir / "env.json").read_text())
    assert env["git"]["commit"] is not None  # the project's own tree, not trainlab's
    evaluated = run(f"{NAME}.eval", f"run_dir={run_dir}")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "test metrics" in evaluated.stdout
    foreign = run("trainlab.eval", f"run_dir={run_dir}")
    assert foreign.returncode == 2
    assert f"'{NAME}.data.SpiralsDataModule', which no config in" in foreign.stderr


def _venv(project: Path) -> Path:
    """The project's .venv without a download: the packages of this test's environment are
    visible to it (a .pth), so ``make install`` resolves them offline; what it installs (the
    project, the pinned trainlab wheel) goes into the project's own .venv."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(project / ".venv")], check=True
    )
    (site,) = (project / ".venv" / "lib").glob("python3*/site-packages")
    here = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "torch").is_dir())
    (site / "_test_environment.pth").write_text(here + "\n")
    return project / ".venv" / "bin" / "python"


def _make(project: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_NO_INDEX": "1",  # offline: nothing may be fetched
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "WANDB_MODE": "offline",
    }
    return subprocess.run(
        ["make", *args], cwd=project, env=env, capture_output=True, text=True, timeout=1200
    )


@pytest.mark.slow
def test_a_project_made_at_an_older_commit_upgrades_to_this_one(tmp_path: Path) -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    known = subprocess.run(
        ["git", "cat-file", "-e", f"{FIRST_THIN_COMMIT}^{{commit}}"], cwd=ROOT, capture_output=True
    )
    if head.returncode != 0 or known.returncode != 0:
        pytest.skip(f"commit {FIRST_THIN_COMMIT} is not in this repository's history")
    old = tmp_path / "trainlab-old"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(old)], check=True)
    subprocess.run(["git", "checkout", "-q", FIRST_THIN_COMMIT], cwd=old, check=True)
    project = tmp_path / NAME
    create = [str(old / "scripts/thin_project.py"), "create", f"--name={NAME}"]
    made = subprocess.run(
        [sys.executable, *create, f"--dest={project}"],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    python = _venv(project)
    # That commit's constraints pin what it was tested with (Optuna 2, SQLAlchemy 1.4), which
    # this offline environment no longer holds: its `make install` would need the network.
    # The project is installed as it was then, its own dependencies resolved by what is here.
    (wheel,) = (project / "vendor").glob("*.whl")
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    installed = subprocess.run(
        [*pip, str(wheel), "-e", "."], cwd=project, capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    (project / ".venv" / ".installed").touch()  # the Makefile's stamp: installed
    tested = _make(project, tmp_path, "test")
    assert tested.returncode == 0, tested.stdout[-3000:]
    record = json.loads((project / ".trainlab" / "project.json").read_text())
    assert record["commit"].startswith(FIRST_THIN_COMMIT)
    with (project / ".gitignore").open("a") as mine:
        mine.write("/notes/\n")  # the user's own edit of a file trainlab owns

    upgraded = _make(project, tmp_path, "upgrade", f"TRAINLAB={ROOT}")
    assert upgraded.returncode == 0, upgraded.stdout[-3000:] + upgraded.stderr[-3000:]
    said = upgraded.stdout
    now = trainlab.__version__
    assert f"trainlab 0.1.0 at {record['commit']} -> {now} at {head.stdout.strip()}" in said
    assert "contracts:" in said and "commits (" in said
    assert "callback: `report_summary()` added, optional" in said  # new since that commit
    assert "api: the old version recorded no signatures" in said
    assert ".gitignore: you edited it, so it is left as it is" in said
    assert "/notes/" in (project / ".gitignore").read_text()
    assert " passed" in said  # make upgrade ran the project's tests
    after = json.loads((project / ".trainlab" / "project.json").read_text())
    assert after["commit"] == head.stdout.strip()
    assert after["contracts"] == contracts.snapshot()  # signatures included: the next diff has them
    loaded = subprocess.run(
        [str(python), "-c", "import trainlab.project as p; print(p.__file__)"],
        capture_output=True,
        text=True,
    )
    shipped = Path(loaded.stdout.strip())
    assert project in shipped.parents  # the pinned wheel, installed in the project's .venv
    assert shipped.read_text() == (ROOT / "src" / "trainlab" / "project.py").read_text()
    again = _make(project, tmp_path, "upgrade", f"TRAINLAB={ROOT}")
    assert again.returncode == 0 and "already pinned" in again.stdout


def _next_release(tmp_path: Path) -> tuple[Path, str]:
    """A wheel of this checkout as its next patch release would be: the version bumped, a
    CHANGELOG section for it, a config key gone, a default changed and an option added."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import thin_project

    tree = copy_checkout(tmp_path / "next")
    _, version = thin_project.package_of(ROOT)
    major, minor, patch = (int(v) for v in version.split("."))
    new = f"{major}.{minor}.{patch + 1}"
    pyproject = tree / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(f'version = "{version}"', f'version = "{new}"')
    )
    changelog = tree / "CHANGELOG.md"
    section = f"## [{new}] - 2027-01-04\n\n### Changed\n- The MLP's dropout defaults to 0.5.\n\n"
    text = changelog.read_text()
    assert "## [Unreleased]\n" in text
    changelog.write_text(text.replace("## [Unreleased]\n", "## [Unreleased]\n\n" + section, 1))
    mlp = tree / "conf" / "net" / "mlp.yaml"
    text = mlp.read_text()
    assert "\ndropout: 0.3" in text, text
    mlp.write_text(text.replace("\ndropout: 0.3", "\ndropout: 0.5"))
    (tree / "conf" / "callbacks" / "quiet.yaml").write_text("progress_bar: null\n")
    train = tree / "conf" / "train.yaml"
    train.write_text(train.read_text().replace("\ntags:", "\n_removed_tags:", 1))
    out = tmp_path / "dist"
    return thin_project.build_wheel(tree, out), new


@pytest.mark.slow
def test_a_project_upgrades_from_a_wheel_or_a_version_with_no_checkout(tmp_path: Path) -> None:
    """The upgrader ships in the wheel: ``make upgrade FROM=<wheel>`` and ``FROM=<version>``
    (pip, from an index: here a folder) run without any trainlab checkout, and say what the
    release changed, from its CHANGELOG and its config surface."""
    project = tmp_path / NAME
    made = _thin(tmp_path, "create", "--name", NAME, "--dest", str(project))
    assert made.returncode == 0, made.stderr
    _venv(project)
    assert _make(project, tmp_path, "install").returncode == 0
    wheel, version = _next_release(tmp_path)
    upgraded = _make(project, tmp_path, "upgrade", f"FROM={wheel}")
    said = upgraded.stdout
    assert upgraded.returncode == 0, said[-3000:] + upgraded.stderr[-3000:]
    assert f" -> {version}\n" in said and "changelog (" in said
    assert "The MLP's dropout defaults to 0.5." in said
    assert "breaking: config: `train` key `tags` removed (setting it fails)" in said
    assert "config: `net=mlp` key `dropout` default 0.3 -> 0.5" in said
    assert "config: `callbacks=quiet` added" in said
    assert " passed" in said  # the project's tests ran on the new trainlab
    pin = (project / "pyproject.toml").read_text()
    assert f'"trainlab=={version}"' in pin
    assert [p.name for p in (project / "vendor").iterdir()] == [wheel.name]
    record = json.loads((project / ".trainlab" / "project.json").read_text())
    assert record["from"] == "wheel" and record["version"] == version
    # no file the project commits names a place on this machine
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=project,
        capture_output=True,
        text=True,
    ).stdout.split()
    for rel in [r for r in listed if (project / r).is_file()]:  # the old wheel is gone
        data = (project / rel).read_bytes()
        assert str(tmp_path).encode() not in data and str(ROOT).encode() not in data, rel

    index = tmp_path / "index"
    index.mkdir()
    (index / wheel.name).write_bytes(wheel.read_bytes())
    env = {"PIP_FIND_LINKS": str(index)}
    again = subprocess.run(
        [str(project / ".venv" / "bin" / "python"), "-m", "trainlab.upgrade", version],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_NO_INDEX": "1", **env},
    )
    assert again.returncode == 0 and "already pinned" in again.stdout, again.stderr
    wrong = subprocess.run(
        [str(project / ".venv" / "bin" / "python"), "-m", "trainlab.upgrade", "9.9.9"],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_NO_INDEX": "1", **env},
    )
    assert wrong.returncode != 0 and "could not download trainlab==9.9.9" in wrong.stderr


@pytest.mark.slow
def test_a_thin_projects_sweep_runs_as_slurm_jobs(project: Path, tmp_path: Path) -> None:
    """The project's configs travel with its jobs: each SLURM job builds the project's data."""
    from tests.test_slurm import LAUNCHER, _slurm_missing
    from tests.test_slurm import NAME as JOBS

    if reason := _slurm_missing():
        pytest.skip(reason)
    work = tmp_path / "work"
    work.mkdir()
    quick = ["trainer.max_epochs=2", "trainer.accelerator=cpu", "callbacks.progress_bar=null"]
    try:
        swept = subprocess.run(
            [sys.executable, "-m", f"{NAME}.train", "-m", *LAUNCHER, "seed=1,2", *quick],
            cwd=work,
            env=_env(project, tmp_path),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        subprocess.run(["scancel", f"--name={JOBS}"], check=False)
    assert swept.returncode == 0, swept.stderr[-3000:]
    assert "2 ok, 0 failed" in swept.stdout
    (sweep,) = (work / "logs" / NAME / "multiruns").iterdir()
    for job in ("0", "1"):
        env = json.loads((sweep / job / "env.json").read_text())
        assert env["slurm"]["SLURM_JOB_ID"]  # it ran as a SLURM job
        config = (sweep / job / "config.yaml").read_text()
        assert f"_target_: {NAME}.data.SpiralsDataModule" in config
        assert json.loads((sweep / job / "metrics.json").read_text())["metrics"]["test/acc"] > 0.4
