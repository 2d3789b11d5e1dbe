"""The guarantees, tried as an adversary would: a user's folder under a failing run, a finished
run under a second one, a busy sweep directory, secrets on the command line, pickles and
foreign targets in files handed over."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import open_dict

from tests.conftest import run_cli
from trainlab.errors import ConfigError
from trainlab.loggers.csv import CSVLogger
from trainlab.runtime.configs import CONFIG_DIR
from trainlab.trust import files
from trainlab.trust.loading import check_buildable, check_checkpoint, project_targets
from trainlab.trust.secrets import MASK, redact, redact_config, scrub_argv

# --- nothing lost ------------------------------------------------------------------------


@pytest.mark.slow  # several CLI runs: the slow suite (CI runs it)
def test_a_rejected_config_removes_only_what_its_process_created(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.log").write_text("notes")
    (mine / ".hydra").mkdir()  # even a folder of the same name as Hydra's
    done = run_cli("trainlab.train", "hydra.run.dir=mine", "data.batch_size=0", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "trainlab: error: data.batch_size must be a positive integer, got 0"
    ]
    assert sorted(os.listdir(mine)) == [".hydra", "notes.log"]
    assert (mine / "notes.log").read_text() == "notes" and not any((mine / ".hydra").iterdir())

    # a new directory, and the folders above it that the run made, go entirely
    done = run_cli("trainlab.train", "hydra.run.dir=new/deep/run", "seed=-1", cwd=tmp_path)
    assert done.returncode == 2 and not (tmp_path / "new").exists()


def _finished_run(run: Path) -> dict[str, bytes]:
    """A run directory as a finished run leaves it (the guard reads names, not contents)."""
    (run / "checkpoints").mkdir(parents=True)
    held = {
        "metrics.json": b'{"metrics": {"test/acc": 0.97}}',
        "checkpoints/best.ckpt": b"weights",
        "config.yaml": b"seed: 1\n",
        "notes.txt": b"mine",
    }
    for name, data in held.items():
        (run / name).write_bytes(data)
    return held


def _holds(run: Path, held: dict[str, bytes]) -> bool:
    return all((run / name).read_bytes() == data for name, data in held.items())


def test_a_second_run_into_a_finished_run_directory_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    held = _finished_run(run)
    done = run_cli("trainlab.train", f"hydra.run.dir={run}", cwd=tmp_path)
    assert done.returncode == 2
    assert f"hydra.run.dir {run} already holds a run (config.yaml, metrics.json" in done.stderr
    assert "resume=auto" in done.stderr and "overwrite=true" in done.stderr
    assert _holds(run, held)
    assert sorted(os.listdir(run)) == ["checkpoints", "config.yaml", "metrics.json", "notes.txt"]

    both = run_cli(
        "trainlab.train", f"hydra.run.dir={run}", "resume=auto", "overwrite=true", cwd=tmp_path
    )
    assert both.returncode == 2 and "not both" in both.stderr and _holds(run, held)


@pytest.mark.slow  # several CLI runs: the slow suite (CI runs it)
def test_overwrite_moves_the_earlier_run_aside_and_deletes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    held = _finished_run(run)
    # overwrite=true, then a config error: the earlier run is kept, moved, and nothing new stays
    done = run_cli(
        "trainlab.train", f"hydra.run.dir={run}", "overwrite=true", "seed=-1", cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert os.listdir(run) == [files.REPLACED]
    (aside,) = (run / files.REPLACED).iterdir()
    assert _holds(aside, held)


def test_a_sweep_directory_in_use_or_holding_jobs_is_refused(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    with (sweep / files.LOCK_FILE).open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another worker's sweep
        done = run_cli("trainlab.train", "-m", f"hydra.sweep.dir={sweep}", "seed=1,2", cwd=tmp_path)
    assert done.returncode == 2
    assert f"hydra.sweep.dir {sweep} is in use by another trainlab process" in done.stderr
    assert os.listdir(sweep) == [files.LOCK_FILE]

    (sweep / "0").mkdir()
    (sweep / "0" / "metrics.json").write_text("{}")
    done = run_cli("trainlab.train", "-m", f"hydra.sweep.dir={sweep}", "seed=1,2", cwd=tmp_path)
    assert done.returncode == 2 and "already holds a run (0/metrics.json)" in done.stderr


def test_a_continued_job_keeps_the_failure_of_its_attempt_before(tmp_path: Path) -> None:
    (tmp_path / "failure.json").write_text('{"status": "failed"}')
    files.keep_failure_history(tmp_path)
    assert not (tmp_path / "failure.json").exists()
    assert json.loads((tmp_path / files.FAILURES / "1.json").read_text())["status"] == "failed"


def test_write_new_never_replaces_a_file(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    files.write_new(path, "first")
    with pytest.raises(ConfigError, match="exists; choose another path"):
        files.write_new(path, "second")
    assert path.read_text() == "first" and os.listdir(tmp_path) == ["export.json"]


def test_rotate_keeps_a_whole_latest_file_at_every_step(tmp_path: Path) -> None:
    """Each file-system step of a rotation, stopped after it: last.ckpt is always there."""
    path, previous = tmp_path / "last.ckpt", tmp_path / "last.previous.ckpt"
    path.write_text("old")
    new = tmp_path / "next"
    new.write_text("new")
    seen: list[str] = []
    real_replace, real_link = os.replace, os.link

    def replace(src: Path, dst: Path) -> None:
        seen.append(path.read_text())
        real_replace(src, dst)
        seen.append(path.read_text())

    def link(src: Path, dst: Path) -> None:
        real_link(src, dst)
        seen.append(path.read_text())

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", replace)
        mp.setattr(os, "link", link)
        files.rotate(new, path, previous)
    assert seen == ["old", "old", "old", "old", "new"] and previous.read_text() == "old"


def test_the_csv_log_of_a_resumed_run_keeps_the_rows_before_its_checkpoint(
    tmp_path: Path,
) -> None:
    ckpt = tmp_path / "last.ckpt"
    torch.save({"global_step": 20, "state_dict": {}}, ckpt)
    first = CSVLogger(str(tmp_path))
    for step in (9, 19, 20, 29):
        first.log_metrics({"train/loss": step / 10}, step=step)
        first.save()
    first.log_metrics({"val/loss": 1.0}, step=29)  # a new column: the file is rewritten
    first.save()
    resumed = CSVLogger(str(tmp_path), resume_from=str(ckpt))
    resumed.log_metrics({"train/loss": 2.0}, step=20)
    resumed.save()
    rows = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    assert rows == ["step,train/loss,val/loss", "9,0.9,", "19,1.9,", "20,2.0,"]


# --- nothing leaked ----------------------------------------------------------------------


def test_secrets_on_the_command_line_become_interpolations() -> None:
    secret = "s3cr3t-Sentinel"
    argv = scrub_argv(
        [
            "train.py",
            f"hydra.sweeper.storage=postgresql+psycopg2://me:{secret}@localhost/db",
            f"+db.password={secret}x",
            "data.tokenizer=word",
        ]
    )
    assert not any(secret in a for a in argv), argv
    assert argv[1].startswith("hydra.sweeper.storage=postgresql+psycopg2://me:${oc.env:")
    assert argv[2].startswith("+db.password=${oc.env:") and argv[3] == "data.tokenizer=word"
    names = [a.split("oc.env:")[1].split("}")[0] for a in argv[1:3]]
    assert [os.environ.pop(n) for n in names] == [secret, f"{secret}x"]
    assert (
        redact(f"connect to postgresql://me:{secret}@h/db")
        == f"connect to postgresql://me:{MASK}@h/db"
    )


def test_written_configs_mask_secret_keys_and_known_secrets() -> None:
    masked = redact_config(
        {"db": {"password": "abc", "user": "me"}, "tokenizer": "word", "hf_token": None}
    )
    assert masked == {"db": {"password": MASK, "user": "me"}, "tokenizer": "word", "hf_token": None}
    assert (
        redact("+  api_key: abcdef123\n   tokenizer: word")
        == f"+  api_key: {MASK}\n   tokenizer: word"
    )


# --- nothing run from a file -------------------------------------------------------------


class Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def write_payload_checkpoint(path: Path, marker: Path) -> None:
    """A checkpoint that looks like Lightning's and runs a command when fully unpickled."""
    state = {"state_dict": {}, "optimizer_states": [], "global_step": 1, "x": Payload(marker)}
    torch.save(state, path)


def test_a_checkpoint_that_needs_unpickling_is_refused_whatever_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    ckpt, marker = tmp_path / "evil.ckpt", tmp_path / "ran"
    write_payload_checkpoint(ckpt, marker)
    with pytest.raises(ConfigError, match=r"evil.ckpt holds objects other than weights"):
        check_checkpoint(ckpt, resume=True)
    assert not marker.exists()


def test_a_run_config_builds_only_what_the_project_configs_name(tmp_path: Path) -> None:
    assert {"trainlab.nets.MLP", "torch.optim.Adam"} <= project_targets([CONFIG_DIR])
    config = {"net": {"_target_": "trainlab.nets.MLP", "act": {"_target_": "os.system"}}}
    with pytest.raises(ConfigError, match=r"net.act._target_ is 'os.system'.*trust_targets"):
        check_buildable(config, tmp_path / "config.yaml", [CONFIG_DIR])
    check_buildable(
        config, tmp_path / "config.yaml", [CONFIG_DIR], trusted=["os.system"]
    )  # told to


# --- same run, same data -------------------------------------------------------------------


def test_eval_and_predict_refuse_data_that_changed_since_training(
    make_cfg: Any, iris_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainlab.runtime.evaluation import evaluate, predict
    from trainlab.runtime.training import fit

    monkeypatch.chdir(tmp_path)  # a relative data.path, as a user types it
    quick = ["trainer.max_epochs=2", "callbacks.progress_bar=null", "baselines=false"]
    cfg = make_cfg("data=csv", "data.path=iris.csv", "data.target=species", *quick)
    fit(cfg)
    run = Path(cfg.paths.output_dir)
    saved = (run / "config.yaml").read_text()
    assert f"path: {iris_csv}" in saved  # absolute: rebuilt from any working directory

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = tmp_path / "before.csv"
    predict(make_cfg(f"run_dir={run}", f"output={out}", config_name="predict"))
    rows = len(out.read_text().splitlines())

    with iris_csv.open("a") as handle:  # rows appended after training
        handle.write("5.0,3.0,1.5,0.2,setosa\n" * 20)
    with pytest.raises(ConfigError, match=r"data.path: .*iris.csv changed since run .* bytes"):
        evaluate(make_cfg(f"run_dir={run}", config_name="eval"))
    with pytest.raises(ConfigError, match="allow_data_change=true"):
        predict(make_cfg(f"run_dir={run}", f"output={tmp_path / 'x.csv'}", config_name="predict"))
    assert not (tmp_path / "x.csv").exists()
    resume = make_cfg("data=csv", f"data.path={iris_csv}", "data.target=species", *quick)
    with open_dict(resume):
        resume.resume = "auto"  # continuing the run on the changed file: refused too
    with pytest.raises(ConfigError, match=r"data.path: .*iris.csv changed since run"):
        fit(resume)
    allowed = tmp_path / "allowed.csv"
    predict(
        make_cfg(
            f"run_dir={run}", f"output={allowed}", "allow_data_change=true", config_name="predict"
        )
    )
    assert len(allowed.read_text().splitlines()) > rows  # told to: it reads the data as it is


def test_eval_refuses_splits_drawn_differently(make_cfg: Any, iris_csv: Path) -> None:
    """The same file split otherwise (a library that draws splits anew, an edited config):
    the rebuilt splits' digests differ from those data.json recorded."""
    from trainlab.runtime.evaluation import evaluate
    from trainlab.runtime.training import fit

    quick = ["trainer.max_epochs=1", "callbacks.progress_bar=null", "baselines=false"]
    cfg = make_cfg("data=csv", f"data.path={iris_csv}", "data.target=species", *quick)
    fit(cfg)
    run = Path(cfg.paths.output_dir)
    assert set(json.loads((run / "data.json").read_text())["splits"]) == {"train", "val", "test"}
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("split_seed: 0", "split_seed: 1"))
    with pytest.raises(ConfigError, match=r"the train, val, test split\(s\) rebuilt for run"):
        evaluate(make_cfg(f"run_dir={run}", config_name="eval"))
