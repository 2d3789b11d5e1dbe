"""Bad input, clearly: each file or value below fails before training with one line that names
the problem, and leaves nothing behind."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from trainlab.errors import ConfigError
from trainlab.runtime.training import fit

REVIEWS = "text,label\n" + "".join(
    f"{'good fine' if i % 2 else 'bad awful'} {i},{'pos' if i % 2 else 'neg'}\n" for i in range(40)
)


def _text(content: str | bytes) -> Callable[[Path], list[str]]:
    def make(folder: Path) -> list[str]:
        path = folder / "texts.csv"
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return ["data=text_csv", f"data.path={path}", "net=rnn"]

    return make


def _table(content: str) -> Callable[[Path], list[str]]:
    def make(folder: Path) -> list[str]:
        (folder / "table.csv").write_text(content)
        return ["data=csv", f"data.path={folder / 'table.csv'}", "data.target=y"]

    return make


def _images(bad: bytes) -> Callable[[Path], list[str]]:
    def make(folder: Path) -> list[str]:
        for label in ("a", "b"):
            (folder / "img" / label).mkdir(parents=True)
            for i in range(6):
                pixels = np.full((8, 8), 20 * i + (100 if label == "b" else 0), np.uint8)
                Image.fromarray(pixels).save(folder / "img" / label / f"{i}.png")
        (folder / "img" / "b" / "bad.png").write_bytes(bad)
        return ["data=image_folder", f"data.root={folder / 'img'}", "data.num_workers=0"]

    return make


def _plain(*overrides: str) -> Callable[[Path], list[str]]:
    return lambda folder: list(overrides)


PNG = (Path(__file__).parent / "test_bad_inputs.py").read_bytes()  # not an image at all
CASES = {
    "text: empty file": (_text(""), r"data.path: .*texts.csv is empty"),
    "text: not UTF-8": (
        _text(REVIEWS.encode() + "café,pos\n".encode("latin-1")),
        r"is not utf-8 text \(byte 0xe9 at offset \d+\); give its encoding, e.g. data.encoding",
    ),
    "text: labels missing": (
        _text(REVIEWS + "no label here,\nnor here,\n"),
        r"2 rows have no 'label' label \(lines \[42, 43\]\)",
    ),
    "text: a class of one row": (
        _text(REVIEWS + "odd one,rare\n"),
        r"classes with fewer than 3 rows: 'rare' \(1\)",
    ),
    "text: every text empty": (
        _text("text,label\n" + ",pos\n,neg\n" * 10),
        r"data.text: column 'text' of .* is empty in every row",
    ),
    "image: a corrupt PNG": (
        _images(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
        r"1 of 13 images cannot be read, first .*b/bad.png .*data.bad_images=skip",
    ),
    "image: not an image": (_images(PNG), r"1 of 13 images cannot be read, first .*bad.png"),
    "csv: four rows": (
        _table("a,b,y\n1,2,x\n2,3,x\n3,1,z\n4,1,z\n"),
        r"table.csv: classes with fewer than 3 rows: 'x' \(2\), 'z' \(2\)",
    ),
    "csv: a header only": (_table("a,b,y\n"), r"has a header \(\['a', 'b', 'y'\]\) but no rows"),
    "negative gradient_clip_val": (
        _plain("trainer.gradient_clip_val=-1"),
        r"trainer.gradient_clip_val must be a number >= 0 or null, got -1",
    ),
    "negative patience": (
        _plain("callbacks.early_stopping.patience=-2"),
        r"EarlyStopping patience must be >= 0 .* got -2",
    ),
}
QUICK = ["trainer.max_epochs=1", "callbacks.progress_bar=null", "callbacks.learning_curves=null"]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_before_training_naming_it(
    case: str, make_cfg: Callable[..., object], tmp_path: Path
) -> None:
    make, message = CASES[case]
    cfg = make_cfg(*make(tmp_path), *QUICK)
    with pytest.raises(ConfigError, match=message):
        fit(cfg)  # type: ignore[arg-type]
    assert not any((tmp_path / "run").iterdir()), "a rejected run wrote files"


def test_skipped_images_are_left_out_and_counted(
    make_cfg: Callable[..., object], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    overrides = _images(b"junk")(tmp_path)
    cfg = make_cfg(*overrides, "data.bad_images=skip", "net=cnn", *QUICK, "baselines=false")
    fit(cfg)  # type: ignore[arg-type]
    assert "left out 1 unreadable images, first" in caplog.text and "bad.png" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_on_the_command_line_is_one_line_and_leaves_nothing(
    case: str, tmp_path: Path
) -> None:
    make, message = CASES[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    done = run_cli("trainlab.train", *make(inputs), *QUICK, cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("trainlab: error: ") and re.search(message, line), line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no logs/ folder at all


def test_a_label_that_looks_like_a_formula_is_quoted_in_predictions() -> None:
    import pandas as pd

    from trainlab.runtime.evaluation import spreadsheet_safe

    table = pd.DataFrame({"pred": ["=HYPERLINK(1)", "-1", "+x", "cat"], "@cmd": [0.1] * 4})
    safe = spreadsheet_safe(table)
    assert safe["pred"].tolist() == ["'=HYPERLINK(1)", "-1", "'+x", "cat"]
    assert list(safe.columns) == ["pred", "'@cmd"] and safe["'@cmd"].tolist() == [0.1] * 4


@pytest.mark.parametrize("bad_images", ["error", pytest.param("skip", marks=pytest.mark.slow)])
def test_an_image_found_unreadable_by_a_worker_is_named_and_the_run_kept(
    bad_images: str,
    make_cfg: Callable[..., object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Setup decodes a sample of the images (here 2); a worker meets the unreadable one
    later. With bad_images=error the run stops with one line naming it and keeps its run
    directory (checkpoints to resume from once the file is fixed); with skip it is left out
    of its batch, named once, and the run ends."""
    from trainlab.data import image_folder
    from trainlab.runtime.cli import reject_bad_config

    monkeypatch.setattr(image_folder, "CHECKED", 2)
    overrides = _images(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)(tmp_path)
    overrides[-1] = "data.num_workers=2"
    cfg = make_cfg(*overrides, f"data.bad_images={bad_images}", "net=cnn", *QUICK)
    run = Path(cfg.paths.output_dir)  # type: ignore[attr-defined]
    if bad_images == "skip":
        fit(cfg)  # type: ignore[arg-type]
        named = [r.message for r in caplog.records if "bad.png" in r.message]
        assert len(named) == 1 and "1 unreadable image(s) so far" in named[0]
        return
    with pytest.raises(SystemExit) as stopped:
        reject_bad_config(lambda: fit(cfg), str(run))  # type: ignore[arg-type]
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.match(r"trainlab: error: data.root: cannot read image .*b/bad.png", line), line
    assert "data.bad_images=skip" in line
    assert (run / "config.yaml").is_file()  # found mid-run: the run directory stays
