"""Packed data (``python -m trainlab.pack``, ``data=packed``): an image folder or a CSV file
as memory-mapped shards; what it holds trains like the source, and what it is handed is read
as numbers only."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainlab.data.packed import PackedDataModule
from trainlab.errors import ConfigError
from trainlab.pack import main as pack
from trainlab.runtime.training import fit

QUICK = ["callbacks.progress_bar=null", "callbacks.learning_curves=null"]


def test_packed_images_hold_every_image_and_train(packed_digits: Path, make_cfg) -> None:  # type: ignore[no-untyped-def]
    meta = json.loads((packed_digits / "meta.json").read_text())
    assert meta["count"] == 1797 and meta["shape"] == [1, 8, 8] and len(meta["shards"]) == 4
    first = np.load(packed_digits / "x-00000.npy", mmap_mode="r")
    assert first.dtype == np.uint8 and first.shape[1:] == (1, 8, 8)
    cfg = make_cfg("data=packed", f"data.path={packed_digits}", "net=cnn", "trainer.max_epochs=8")
    cfg.data.num_workers = 0
    metrics = fit(cfg)
    assert metrics["test/acc"] >= 0.95  # as from the PNGs themselves


def test_a_batch_reads_the_rows_it_names_across_shards(packed_digits: Path) -> None:
    dm = PackedDataModule(str(packed_digits), num_workers=0)
    dm.setup()
    train = dm.datasets["train"]
    shards = [
        np.load(packed_digits / s["file"])
        for s in json.loads((packed_digits / "meta.json").read_text())["shards"]
    ]
    whole = np.concatenate(shards)
    picked = [5, 900, 3, 1200, 17]  # items of the split, from several shards
    x, y = train.__getitems__(picked)
    raw = whole[train.rows[picked]].astype(np.float32)
    np.testing.assert_allclose(x.numpy(), (raw - train.mean) / train.std, rtol=1e-6)
    labels = np.load(packed_digits / "labels.npy")
    assert y.tolist() == labels[train.rows[picked]].tolist()
    pixels = whole[train.rows].astype(np.float64)  # every training row: fewer than stats_rows
    assert train.mean.ravel() == pytest.approx([pixels.mean()], rel=1e-6)
    assert train.std.ravel() == pytest.approx([pixels.std()], rel=1e-5)


def test_a_csv_file_is_packed_in_chunks_and_learned(tmp_path: Path, make_cfg) -> None:  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame.insert(0, "id", range(len(frame)))
    frame.to_csv(tmp_path / "wine.csv", index=False)
    out = tmp_path / "wine"
    argv = ["csv", str(tmp_path / "wine.csv"), str(out), "--target", "target", "--exclude", "id"]
    assert pack([*argv, "--chunk-rows", "50", "--shard-mb", "0.002"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["task"] == "classification" and meta["shape"] == [13]
    assert meta["class_names"] == ["barbera", "barolo", "grignolino"]
    assert meta["count"] == 178 and len(meta["shards"]) > 1
    cfg = make_cfg("data=packed", f"data.path={out}", "trainer.max_epochs=20", *QUICK)
    cfg.data.num_workers = 0
    assert fit(cfg)["test/acc"] >= 0.9


def test_packing_names_a_bad_image_or_leaves_it_out(tmp_path: Path) -> None:
    for label in ("a", "b"):
        (tmp_path / "img" / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((4, 4), 60 * i, np.uint8)).save(
                tmp_path / "img" / label / f"{i}.png"
            )
    (tmp_path / "img" / "b" / "bad.png").write_bytes(b"not an image")
    source, out = str(tmp_path / "img"), tmp_path / "out"
    assert pack(["images", source, str(out), "--workers", "1"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img"]  # nothing left behind
    assert pack(["images", source, str(out), "--workers", "1", "--bad-images", "skip"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["count"] == 8 and meta["left_out"] == 1
    assert np.load(out / "labels.npy").tolist() == [0] * 4 + [1] * 4
    assert pack(["images", source, str(out), "--workers", "1"]) == 2  # never overwritten
    assert json.loads((out / "meta.json").read_text()) == meta


def test_a_pack_stopped_midway_leaves_nothing(
    tmp_path: Path, digits_pngs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM (or Ctrl-C) after the first rows are written: the partial folder goes."""
    from trainlab.pack import ShardWriter

    add = ShardWriter.add

    def add_then_stop(self: ShardWriter, rows: np.ndarray) -> None:
        add(self, rows)
        if self.shards:  # a shard is on disk
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(ShardWriter, "add", add_then_stop)
    out = tmp_path / "out"
    argv = ["images", str(digits_pngs), str(out), "--workers", "1", "--shard-mb", "0.03"]
    assert pack(argv) == 130
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is not add_then_stop  # the handler before is back


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda m, d: m["shards"][0].update(file="../../outside.npy"), "shard .* is missing"),
        (lambda m, d: m.update(format="other"), "is not a trainlab-packed description"),
        (lambda m, d: m["shards"][0].update(rows=3), "holds uint8 rows of shape"),
        (  # an object array: loading it would unpickle
            lambda m, d: np.save(d / "x-00000.npy", np.array([{"a": 1}] * 3), allow_pickle=True),
            "cannot read shard .*x-00000.npy",
        ),
    ],
    ids=["path-outside", "not-packed", "wrong-rows", "pickled-shard"],
)
def test_a_packed_folder_is_checked_and_never_unpickled(
    tmp_path: Path,
    packed_digits: Path,
    tamper,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(packed_digits, folder)
    meta = json.loads((folder / "meta.json").read_text())
    tamper(meta, folder)
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=message):
        PackedDataModule(str(folder), num_workers=0).setup()


def test_a_folder_that_is_not_packed_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"is not a packed dataset \(no meta.json\); .*trainlab.pack"
    ):
        PackedDataModule(str(tmp_path), num_workers=0).setup()
