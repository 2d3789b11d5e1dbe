"""Shared fixtures: composing configs offline, tiny data files, and a check that tests leave
no files in the repository."""

from __future__ import annotations

import gzip
import inspect
import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from trainlab.runtime.configs import CONFIG_DIR, register_resolvers

ROOT = CONFIG_DIR.parent
register_resolvers()


OPTION = re.compile(r"\b(experiment|data|net)=(\w+)")
PART = re.compile(r"\btrainlab\.(data|nets)\.(\w+)")
IMPORTED = re.compile(r"from trainlab\.(data|nets) import ([\w, ]+)")


def dropped(text: str) -> list[str]:
    """The example parts ``text`` names that this project does not have: config options
    (``data=signals``) and modules or classes of ``trainlab.data``/``trainlab.nets``."""
    import importlib

    missing = {
        f"{group}={name}"
        for group, name in OPTION.findall(text)
        if not (CONFIG_DIR / group / f"{name}.yaml").is_file()
    }
    named = PART.findall(text) + [
        (package, name.strip())
        for package, names in IMPORTED.findall(text)
        for name in names.split(",")
    ]
    for package, name in named:
        module = importlib.import_module(f"trainlab.{package}")
        source = Path(module.__file__ or "").parent / f"{name}.py"
        if name and not hasattr(module, name) and not source.is_file():
            missing.add(f"trainlab.{package}.{name}")
    return sorted(missing)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses an example part skips where the project dropped it (``make
    new-project EXAMPLES=drop``): an experiment, data or net option, a module or a class,
    named in its code or its parameters. Here, where nothing is dropped, none skips."""
    for item in items:
        function = getattr(item, "function", None)
        if function is None:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        text = inspect.getsource(function) + repr(params)
        if isinstance(params.get("experiment"), str):  # parametrized by experiment name
            text += f" experiment={params['experiment']}"
        if missing := dropped(text):
            item.add_marker(pytest.mark.skip(reason=f"example part(s) {missing} dropped"))


@pytest.fixture(scope="session", autouse=True)
def _repository_stays_clean() -> Iterator[None]:
    """No test may write run directories, logs or data into the repository."""
    before = set(os.listdir(ROOT))
    logs_before = set(os.listdir(ROOT / "logs")) if (ROOT / "logs").is_dir() else set()
    yield
    assert set(os.listdir(ROOT)) - before == set(), "tests left files in the repository root"
    if (ROOT / "logs").is_dir():
        assert set(os.listdir(ROOT / "logs")) == logs_before, "tests wrote into logs/"


def compose_cfg(config_name: str, overrides: list[str], root: Path) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` as Hydra would, with all paths under ``root``."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.root_dir = str(root)
        cfg.paths.output_dir = str(root / "run")
    (root / "run").mkdir(parents=True, exist_ok=True)
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``make_cfg("net=cnn", ...)``: a composed training config writing under ``tmp_path``."""

    def make(*overrides: str, config_name: str = "train") -> DictConfig:
        return compose_cfg(config_name, list(overrides), tmp_path)

    return make


def run_cli(
    module: str, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <module> args`` the way a user would, outputs under ``cwd``."""
    full_env = {
        **os.environ,
        "TRAINLAB_ROOT": str(cwd),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as a gzip-compressed IDX file, as MNIST ships them."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> Path:
    """A 10-class MNIST look-alike in IDX files: each class is a bright bar in its own row."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 10
        x = rng.integers(0, 30, size=(n, 28, 28))
        for i, label in enumerate(y):
            x[i, 2 + 2 * label, 4:24] = 255
        return x, y

    for prefix, n in (("train", 200), ("t10k", 50)):
        x, y = images(n)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
    return tmp_path / "data"


@pytest.fixture
def iris_csv(tmp_path: Path) -> Path:
    """Iris as a user's CSV file: named feature columns and text labels."""
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = [bunch.target_names[t] for t in frame.pop("target")]
    path = tmp_path / "iris.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def digits_pngs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's 1,797 digits as 8x8 grayscale PNG files in ``<root>/<digit>/<i>.png``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits_pngs")
    bunch = load_digits()
    for i, (image, label) in enumerate(zip(bunch.images, bunch.target, strict=True)):
        folder = root / str(label)
        folder.mkdir(exist_ok=True)
        Image.fromarray((image * 255 / 16).astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def packed_digits(digits_pngs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits PNGs packed by ``python -m trainlab.pack`` in shards of about 32 KiB (four)."""
    from trainlab.pack import main as pack

    out = tmp_path_factory.mktemp("packed") / "digits"
    argv = ["images", str(digits_pngs), str(out), "--channels", "1", "--shard-mb", "0.03"]
    assert pack([*argv, "--workers", "2"]) == 0
    return out


def copy_checkout(dest: Path) -> Path:
    """This checkout's files as git lists them (links kept; no tests, docs or private files):
    a tree to build, bump or release from without touching the checkout."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import new_project

    for rel in new_project.template_files(ROOT):
        if new_project.private(rel) or rel.parts[0] in ("tests", "docs"):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / rel).is_symlink():
            (dest / rel).symlink_to((ROOT / rel).readlink())
        elif (ROOT / rel).is_file():
            shutil.copy2(ROOT / rel, dest / rel)
    return dest
