"""A full disk: the run ends with one line naming the file and what is intact, leaves no
temporary file, and resumes exactly once space is freed. Tried on a real tmpfs of 1.2 MB,
mounted for the test (it needs root and may mount file systems; it skips otherwise)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli
from tests.helpers import learning_curve

COMMON = [
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
    "callbacks.early_stopping=null",
    "callbacks.last_checkpoint.every_seconds=0",
    "trainer.max_epochs=4",
    "seed=3",
]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1.2 MB tmpfs: room for the digits MLP's first checkpoints, not for later ones."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_is_one_line_leaves_nothing_half_written_and_resumes(
    tmp_path: Path, small_disk: Path
) -> None:
    straight = tmp_path / "straight"
    done = run_cli("trainlab.train", *COMMON, f"hydra.run.dir={straight}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]

    run = small_disk / "run"
    job = [*COMMON, f"hydra.run.dir={run}", "resume=auto"]
    full = run_cli("trainlab.train", *job, cwd=tmp_path)
    assert full.returncode == 1
    assert "Traceback" not in full.stderr
    (line,) = [x for x in full.stderr.splitlines() if x.startswith("trainlab: error")]
    assert "No space left on device writing " + str(run / "checkpoints") in line
    latest = run / "checkpoints" / "last.ckpt"
    step = torch.load(latest, weights_only=True)["global_step"]
    assert f"{latest} (step {step}) and the rows before it in the logs are intact" in line
    assert "resume=auto" in line
    left = [p.name for p in run.rglob("*") if p.name.endswith(".tmp") or ".next." in p.name]
    assert left == []

    subprocess.run(["mount", "-o", "remount,size=50m", str(small_disk)], check=True)
    again = run_cli("trainlab.train", *job, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    ours = torch.load(latest, weights_only=True)["state_dict"]
    theirs = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert learning_curve(run).equals(learning_curve(straight))
