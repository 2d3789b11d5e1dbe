"""The guarantees end to end: secret sentinels searched for in every file a sweep writes (W&B's
included) and on the console, and payload checkpoints handed to resume, eval, predict and
export with the environment asking torch to unpickle."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.helpers import throwaway_postgres
from tests.test_trust import write_payload_checkpoint

QUICK = ["trainer.max_epochs=1", "callbacks.progress_bar=null", "baselines=false"]


def _hits(folder: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in secrets if s.encode() in data]
    return found


@pytest.mark.slow
def test_no_secret_reaches_a_file_or_the_console(tmp_path: Path) -> None:
    """A PostgreSQL password in the storage URL (the server asks for it), one in an environment
    variable used through ${oc.env:}, and an API key given as a config value."""
    in_url, in_env, in_value = "Url-Sentinel-7f3a", "Env-Sentinel-91bc", "Key-Sentinel-5d20"
    with throwaway_postgres(password=in_url) as url:
        storage = url.replace("postgres@", f"postgres:{in_url}@")
        done = run_cli(
            "trainlab.train",
            "hparams_search=optuna",
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.study_name=sentinels",
            "logger=many",  # csv, tensorboard and W&B (offline)
            "+db.password=${oc.env:DB_PASSWORD}",
            f"+tracker.api_key={in_value}",
            *QUICK,
            cwd=tmp_path,
            env={"DB_PASSWORD": in_env, "PYTHONPATH": str(ROOT)},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "sentinels" in done.stdout + done.stderr  # the study ran on the server
        report = run_cli("trainlab.report", *tmp_path.glob("logs/*/multiruns/*"), cwd=tmp_path)
        assert report.returncode == 0, report.stderr[-2000:]
    written = list((tmp_path / "logs").rglob("*"))
    assert any(p.name == "hydra.yaml" for p in written)  # Hydra's copy of the overrides
    assert any(p.suffix == ".wandb" for p in written) and any("hparams" in p.name for p in written)
    secrets = [in_url, in_env, in_value]
    assert _hits(tmp_path / "logs", secrets) == []
    console = done.stdout + done.stderr + report.stdout + report.stderr
    assert [s for s in secrets if s in console] == []


@pytest.mark.slow
def test_a_parallel_sweeps_jobs_mask_secrets_in_their_own_processes(tmp_path: Path) -> None:
    """Each job of a joblib sweep runs in a worker process of its own: it masks the
    environment's secrets in its log records as the entry point's process does."""
    sentinel = "Env-Sentinel-Worker-2c9e"
    done = run_cli(
        "trainlab.train",
        "-m",
        "hydra/launcher=parallel",
        "seed=1,2",
        "+callbacks.leak._target_=tests.helpers.LogsTheDatabaseUrl",
        *QUICK,
        cwd=tmp_path,
        env={"DB_PASSWORD": sentinel, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    logs = list((tmp_path / "logs").rglob("train.log"))
    assert len(logs) == 2 and all("db with password ***" in p.read_text() for p in logs)
    assert _hits(tmp_path / "logs", [sentinel]) == []
    assert sentinel not in done.stdout + done.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run directory with best.ckpt and last.ckpt."""
    root = tmp_path_factory.mktemp("trained")
    run = root / "run"
    done = run_cli("trainlab.train", *QUICK, f"hydra.run.dir={run}", cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["ckpt_path", "resume=auto", "eval", "predict", "export"])
def test_a_payload_checkpoint_never_runs(trained: Path, tmp_path: Path, entry: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    marker = tmp_path / "payload-ran"
    name = "last.ckpt" if entry in ("ckpt_path", "resume=auto") else "best.ckpt"
    payload = run / "checkpoints" / name
    write_payload_checkpoint(payload, marker)
    env = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONPATH": str(ROOT)}
    if entry == "ckpt_path":
        args = ["trainlab.train", *QUICK, f"ckpt_path={payload}", "hydra.run.dir=out"]
    elif entry == "resume=auto":
        (run / "checkpoints" / "last.previous.ckpt").unlink(missing_ok=True)
        args = ["trainlab.train", *QUICK, "resume=auto", f"hydra.run.dir={run}"]
    else:
        args = [f"trainlab.{entry}", f"run_dir={run}", "hydra.run.dir=out"]
    before = sorted(os.listdir(run))
    done = run_cli(*args, cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert not marker.exists(), "the payload ran"
    (line,) = done.stderr.strip().splitlines()
    assert f"{payload} holds objects other than weights" in line
    assert not (tmp_path / "out").exists() and sorted(os.listdir(run)) == before
