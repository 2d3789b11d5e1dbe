"""DataModules: deterministic stratified splits, train-only normalisation, tensor batches,
CSV files, IDX files and their download."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import write_idx
from trainlab.data import CSVDataModule, IDXImageDataModule, SklearnDataModule, TensorBatches
from trainlab.data import mnist as mnist_module
from trainlab.data.idx import download, md5sum, read_idx
from trainlab.data.tables import infer_task
from trainlab.errors import ConfigError


def test_split_depends_on_split_seed_only() -> None:
    torch.manual_seed(1)
    a = SklearnDataModule("digits", split_seed=3)
    a.setup()
    torch.manual_seed(2)
    b = SklearnDataModule("digits", split_seed=3)
    b.setup()
    c = SklearnDataModule("digits", split_seed=4)
    c.setup()
    for split in ("train", "val", "test"):
        assert torch.equal(a.tensors(split)[0], b.tensors(split)[0])
    assert not torch.equal(a.tensors("test")[0], c.tensors("test")[0])


def test_splits_are_disjoint_stratified_and_sized() -> None:
    dm = SklearnDataModule("iris", val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    sizes = {s: len(dm.tensors(s)[1]) for s in ("train", "val", "test")}
    assert sizes == {"train": 90, "val": 30, "test": 30}
    for split in ("val", "test"):
        counts = torch.bincount(dm.tensors(split)[1], minlength=3)
        assert counts.tolist() == [10, 10, 10]  # iris has 50 of each class


def test_normalisation_is_fit_on_the_training_split_only() -> None:
    dm = SklearnDataModule("wine")
    dm.setup()
    x_train = dm.tensors("train")[0]
    assert torch.allclose(x_train.mean(0), torch.zeros(13), atol=1e-5)
    assert torch.allclose(x_train.std(0, unbiased=False), torch.ones(13), atol=1e-4)
    assert dm.tensors("test")[0].mean(0).abs().max() > 1e-3  # test data is not re-centred


def test_layouts_and_shapes() -> None:
    shapes = {}
    for layout in ("tabular", "image", "sequence"):
        dm = SklearnDataModule("digits", layout=layout)
        dm.setup()
        shapes[layout] = (dm.input_shape, dm.modality, dm.num_outputs)
    assert shapes == {
        "tabular": ((64,), "tabular", 10),
        "image": ((1, 8, 8), "image", 10),
        "sequence": ((8, 8), "sequence", 10),
    }


def test_regression_target_is_standardised_on_train() -> None:
    dm = SklearnDataModule("diabetes")
    dm.setup()
    y = dm.tensors("train")[1]
    assert dm.task == "regression" and y.shape[1] == 1 and dm.num_outputs == 1
    assert abs(float(y.mean())) < 1e-5
    mean, std = dm.target_stats
    assert 100 < mean < 200 and std > 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "cifar"}, "data.dataset 'cifar' is unknown"),
        ({"dataset": "iris", "layout": "image"}, "needs dataset=digits"),
        ({"batch_size": 0}, "data.batch_size must be a positive integer"),
        ({"val_fraction": 1.5}, r"data.val_fraction must be a number in \(0, 1\)"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "must be < 1"),
        ({"normalize": "minmax"}, "data.normalize 'minmax' is unknown"),
    ],
)
def test_bad_data_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SklearnDataModule(**kwargs)  # type: ignore[arg-type]


# -- tensor batches ---------------------------------------------------------------------
def test_batches_cover_the_data_and_reshuffle_by_epoch() -> None:
    x, y = torch.arange(10).float().unsqueeze(1), torch.arange(10)
    loader = TensorBatches(x, y, batch_size=4, shuffle=True, seed=0)
    assert len(loader) == 3
    epoch0 = torch.cat([b[1] for b in loader])
    again = torch.cat([b[1] for b in loader])
    loader.sampler.set_epoch(1)
    epoch1 = torch.cat([b[1] for b in loader])
    assert sorted(epoch0.tolist()) == list(range(10))
    assert torch.equal(epoch0, again)  # the order depends on (seed, epoch) only
    assert not torch.equal(epoch0, epoch1)


def test_batches_are_split_across_ranks_evenly() -> None:
    x, y = torch.zeros(10, 1), torch.arange(10)
    ranks = [TensorBatches(x, y, 2, shuffle=True, seed=5, rank=r, world_size=3) for r in range(3)]
    seen = [torch.cat([b[1] for b in loader]) for loader in ranks]
    assert {len(s) for s in seen} == {4} and {len(loader) for loader in ranks} == {2}
    assert set(torch.cat(seen).tolist()) == set(range(10))


def test_unshuffled_batches_are_views() -> None:
    x, y = torch.randn(5, 2), torch.arange(5)
    first = next(iter(TensorBatches(x, y, 2)))
    assert first[0].data_ptr() == x.data_ptr()


# -- CSV --------------------------------------------------------------------------------
def test_csv_with_text_labels(iris_csv: Path) -> None:
    dm = CSVDataModule(path=str(iris_csv), target="species")
    dm.setup()
    assert dm.task == "classification"
    assert dm.class_names == ["setosa", "versicolor", "virginica"]
    assert dm.feature_names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert dm.input_shape == (4,)


def test_csv_feature_subset_and_regression(iris_csv: Path) -> None:
    dm = CSVDataModule(
        path=str(iris_csv), target="petal_width", features=["sepal_length", "petal_length"]
    )
    dm.setup()
    assert dm.task == "regression" and dm.input_shape == (2,)


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["a", "b"], "classification"),
        ([0, 1, 2, 1], "classification"),
        ([0.5, 1.2, 3.3], "regression"),
        (list(range(50)), "regression"),
        ([True, False], "classification"),
    ],
)
def test_task_inference(values: list[object], task: str) -> None:
    assert infer_task(pd.Series(values)) == task


def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        (None, {"target": "y"}, "does not exist"),
        ("a,b\n1,2\n3,4\n", {"target": "y"}, r"column 'y' is not in .*columns: \['a', 'b'\]"),
        ("a,b,y\n1,x,0\n2,z,1\n", {"target": "y"}, r"feature columns \['b'\] are not numeric"),
        ("a,y\n1,0\n,1\n", {"target": "y"}, r"missing values in columns \{'a': 1\}"),
        ("a,y\n1,0\n2,1\n", {"target": "y", "features": ["c"]}, r"columns \['c'\] are not in"),
        ("a,y\n1,0\n2,0\n", {"target": "y"}, "has a single class"),
        ("a,y\n1,x\n2,z\n", {"target": "y", "task": "regression"}, "needs a numeric target"),
        ("a,y\n1,0\n", {"target": "y", "task": "ranking"}, "data.task 'ranking' is unknown"),
    ],
)
def test_bad_csv_input(
    tmp_path: Path, text: str | None, kwargs: dict[str, object], message: str
) -> None:
    path = _csv(tmp_path, text) if text else str(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match=message):
        CSVDataModule(path=path, **kwargs).setup()  # type: ignore[arg-type]


# -- IDX --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_round_trip(tmp_path: Path, dtype: type) -> None:
    codes = {np.uint8: 0x08, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
    array = (np.arange(24).reshape(2, 3, 4) * 3).astype(dtype)
    raw = bytes([0, 0, codes[dtype], 3]) + np.array(array.shape, ">u4").tobytes()
    raw += array.astype(np.dtype(dtype).newbyteorder(">")).tobytes()
    (tmp_path / "a.idx").write_bytes(raw)
    with gzip.open(tmp_path / "a.idx.gz", "wb") as f:
        f.write(raw)
    for name in ("a.idx", "a.idx.gz"):
        got = read_idx(tmp_path / name)
        assert got.dtype == np.dtype(dtype) and np.array_equal(got, array)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ConfigError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"abc")
    with pytest.raises(ConfigError, match="promises shape"):
        read_idx(tmp_path / "short")


def test_download_checks_the_checksum(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "f.gz").write_bytes(b"payload")
    good = md5sum(mirror / "f.gz")
    got = download(
        "f.gz", good, [(tmp_path / "nowhere").as_uri(), mirror.as_uri()], tmp_path / "dest"
    )
    assert got.read_bytes() == b"payload"
    with pytest.raises(ConfigError, match=r"checksum .* != expected 0+"):
        download("f.gz", "0" * 32, [mirror.as_uri()], tmp_path / "dest2")
    assert list((tmp_path / "dest2").iterdir()) == []  # nothing half-written is left


def test_idx_datamodule_reads_generated_files(tiny_mnist: Path) -> None:
    dm = IDXImageDataModule(root=str(tiny_mnist), verify=False, val_fraction=0.1)
    dm.setup()
    assert dm.input_shape == (1, 28, 28) and dm.num_outputs == 10
    assert [len(dm.tensors(s)[1]) for s in ("train", "val", "test")] == [180, 20, 50]


def test_idx_datamodule_missing_files_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.download=true"):
        IDXImageDataModule(root=str(tmp_path)).setup()


def test_idx_datamodule_downloads_and_verifies(
    tiny_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tiny_mnist / "mnist"
    sums = {p.name: md5sum(p) for p in source.iterdir()}
    monkeypatch.setitem(mnist_module.VARIANTS["mnist"], "md5", sums)
    dm = IDXImageDataModule(root=str(tmp_path / "fresh"), download=True, mirrors=[source.as_uri()])
    dm.setup()
    assert sorted(p.name for p in (tmp_path / "fresh" / "mnist").iterdir()) == sorted(sums)
    write_idx(tmp_path / "fresh" / "mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(50))
    with pytest.raises(ConfigError, match="differs from the published"):
        IDXImageDataModule(root=str(tmp_path / "fresh")).setup()


def test_the_adding_problem_is_what_it_says() -> None:
    from trainlab.data import LongRangeDataModule

    loaded = LongRangeDataModule(problem="adding", length=50, samples=4000).load()
    x, y = loaded.x, loaded.y
    assert x.shape == (4000, 50, 2) and loaded.task == "regression"
    markers = x[:, :, 1]
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :25].sum(1) == 1).all() and (markers[:, 25:].sum(1) == 1).all()
    assert np.allclose((x[:, :, 0] * markers).sum(1), y, atol=1e-5)
    # predicting the mean leaves the variance of a sum of two U(0, 1): 2/12
    assert float(((y - y.mean()) ** 2).mean()) == pytest.approx(1 / 6, abs=0.01)


def test_the_recall_task_hides_the_label_in_the_first_step() -> None:
    from trainlab.data import LongRangeDataModule

    loaded = LongRangeDataModule(problem="recall", length=30, samples=500, classes=5).load()
    assert loaded.x.shape == (500, 30, 5) and loaded.task == "classification"
    assert (loaded.x[:, 0].argmax(1) == loaded.y).all()
    assert np.allclose(loaded.x[:, 0].sum(1), 1.0)  # one-hot, then noise
    assert loaded.class_names is not None and len(loaded.class_names) == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"problem": "copy"}, "data.problem 'copy' is unknown; use one of"),
        ({"length": 1}, "data.length must be an integer >= 2, got 1"),
        ({"classes": 1}, "data.classes must be an integer >= 2"),
    ],
)
def test_bad_long_range_settings(kwargs: dict[str, object], message: str) -> None:
    from trainlab.data import LongRangeDataModule

    with pytest.raises(ConfigError, match=message):
        LongRangeDataModule(**kwargs)  # type: ignore[arg-type]


def test_k_folds_validate_on_each_sample_once_and_never_touch_the_test_split() -> None:
    folds = [SklearnDataModule("wine", folds=5, fold=k, normalize="none") for k in range(5)]
    for dm in folds:
        dm.setup()
    rows = lambda x: {tuple(r) for r in x.numpy().round(5)}  # noqa: E731
    test = rows(folds[0].tensors("test")[0])
    vals = [folds[k].tensors("val")[0] for k in range(5)]
    assert all(rows(dm.tensors("test")[0]) == test for dm in folds)
    seen = [r for v in vals for r in rows(v)]
    rest = rows(folds[0].tensors("train")[0]) | rows(vals[0])
    assert len(seen) == len(set(seen)) and set(seen) == rest and not set(seen) & test
    per_class = torch.bincount(torch.cat([folds[0].tensors(s)[1] for s in ("train", "val")]))
    for dm in folds:  # stratified: every fold holds a fifth of each class
        counts = torch.bincount(dm.tensors("val")[1], minlength=3)
        assert ((counts - per_class / 5).abs() <= 1).all()
        assert len(dm.tensors("train")[0]) + len(dm.tensors("val")[0]) == len(rest)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"folds": 1}, "data.folds must be an integer >= 2 or null, got 1"),
        ({"folds": 5, "fold": 5}, r"data.fold must be one of 0..4, got 5"),
        ({"fold": 2}, r"data.fold must be one of 0 \(data.folds is not set\), got 2"),
    ],
)
def test_bad_fold_settings_fail_early(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SklearnDataModule("iris", **kwargs)


def test_graph_data_splits_nodes_and_graphs() -> None:
    from trainlab.data import BlockModelDataModule, CyclesDataModule, KarateClubDataModule

    karate = KarateClubDataModule()
    karate.setup()
    masks = torch.stack([karate.masks[s] for s in ("train", "val", "test")])
    assert karate.graph.num_nodes == 34 and karate.graph.edge_index.shape == (2, 156)
    assert (masks.sum(0) == 1).all()  # every member in exactly one split
    graph, y = next(iter(karate.val_dataloader()))
    assert torch.equal(graph.target_mask, karate.masks["val"]) and len(y) == masks[1].sum()
    assert karate.class_names == ["Mr. Hi", "Officer"] and karate.input_shape == (34,)

    sbm = BlockModelDataModule(blocks=3, block_size=30, p_in=0.3, p_out=0.0)
    sbm.setup()
    src, dst = sbm.graph.edge_index
    assert (sbm.graph.y[src] == sbm.graph.y[dst]).all()  # p_out=0: no edge across communities

    cycles = CyclesDataModule(samples=60)
    cycles.setup()
    batch, labels = next(iter(cycles.train_dataloader()))
    for graph, label in zip(batch.to_data_list(), labels, strict=True):
        edges = graph.edge_index.shape[1] // 2
        assert edges == graph.num_nodes - 1 + int(label)  # a tree, or a tree and one edge
    assert sum(len(cycles.graphs[s]) for s in ("train", "val", "test")) == 60
    with pytest.raises(ConfigError, match=r"data\.p_in must be a probability"):
        BlockModelDataModule(p_in=1.5)


def test_generated_tones_rise_and_fall_in_their_spectrograms() -> None:
    from trainlab.data.audio import CLASSES, spectrogram, tones

    waves, labels = tones(40, sample_rate=4000, duration=0.5, noise=0.0, seed=1)
    spec = spectrogram(waves, n_fft=128, hop=64)  # (N, frames, bins)
    peak = spec.argmax(axis=2)  # the loudest bin of each frame
    trend = peak[:, -3:].mean(1) - peak[:, :3].mean(1)
    for kind, sign in (("rising", 1), ("falling", -1)):
        assert (np.sign(trend[labels == CLASSES.index(kind)]) == sign).all()
    assert (np.abs(trend[labels == CLASSES.index("steady")]) <= 1).all()


def test_permute_shuffles_the_positions_of_every_sample_alike() -> None:
    """One permutation from split_seed, the same in every split; labels and splits unchanged."""
    from trainlab.data import SignalsDataModule

    plain = SignalsDataModule(samples=200, split_seed=3)
    shuffled = SignalsDataModule(samples=200, split_seed=3, permute=True)
    for dm in (plain, shuffled):
        dm.setup()
    order = np.random.default_rng(3).permutation(64)
    for split in ("train", "val", "test"):
        (x, y), (xp, yp) = plain.tensors(split), shuffled.tensors(split)
        assert torch.equal(y, yp) and torch.equal(xp, x[:, order])
    # images: the pixels, every channel alike
    image = SklearnDataModule(dataset="digits", layout="image", permute=True, split_seed=1)
    image.setup()
    x = SklearnDataModule(dataset="digits", layout="image", split_seed=1)
    x.setup()
    pixels = np.random.default_rng(1).permutation(64)
    flat = x.tensors("test")[0].reshape(len(x.tensors("test")[0]), 1, 64)
    assert torch.equal(image.tensors("test")[0], flat[:, :, pixels].reshape(-1, 1, 8, 8))


def test_bad_permute_and_signals_settings_are_named() -> None:
    from trainlab.data import SignalsDataModule

    with pytest.raises(ConfigError, match=r"data\.permute must be true or false, got 'yes'"):
        SignalsDataModule(permute="yes")
    with pytest.raises(
        ConfigError, match=r"data.template_length \(50\) must be at most data.length \(40\)"
    ):
        SignalsDataModule(length=40, template_length=50)
    with pytest.raises(ConfigError, match=r"data\.bumps must be an integer >= 1, got 0"):
        SignalsDataModule(bumps=0)


def test_permute_refuses_tabular_data() -> None:
    dm = SklearnDataModule(dataset="iris", permute=True)
    with pytest.raises(
        ConfigError, match="shuffles the positions of sequences or images; this data is tabular"
    ):
        dm.setup()


def test_signals_place_each_class_template_anywhere() -> None:
    from trainlab.data import SignalsDataModule

    dm = SignalsDataModule(samples=500, noise=0.0, split_seed=0)
    loaded = dm.load()
    assert loaded.x.shape == (500, 64, 1) and np.bincount(loaded.y).tolist() == [50] * 10
    shapes = dm.templates()
    first = loaded.x[loaded.y == 0][:, :, 0]
    starts = {int(np.flatnonzero(np.abs(row) > 1e-9)[0]) for row in first}
    assert len(starts) > 5  # the same class at many offsets

    # noiseless: each sample is its own class's template (scaled, sheared) at some offset
    def best_match(row: np.ndarray, shape: np.ndarray) -> float:
        width = len(shape)
        windows = [row[o : o + width] for o in range(len(row) - width + 1)]
        return max(float(np.corrcoef(w, shape)[0, 1]) for w in windows if w.std() > 0)

    assert min(best_match(r, shapes[0]) for r in first) > 0.95
    assert np.mean([best_match(r, shapes[1]) for r in first]) < 0.9


def test_an_image_folder_is_listed_and_fingerprinted_as_pathlib_lists_it(tmp_path: Path) -> None:
    """The fast listing (os.scandir) keeps pathlib's order and skips linked folders as
    ``rglob`` does: the split of a folder, and so the data.json of runs made before it, stay
    the same (a plain string sort puts ``sub.png`` before ``sub/z.png``)."""
    from PIL import Image

    from trainlab.data.image_folder import EXTENSIONS, find_images
    from trainlab.trust.data import fingerprint

    root = tmp_path / "images"
    names = ["a/1.png", "a/A.png", "a/a.b.png", "b/sub/z.png", "b/sub.x/y.png", "b/sub.png"]
    for name in [*names, "b/sub-1.png", "outside/q.png"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / name)
    (root / "b" / "link").symlink_to(root / "outside")  # a linked folder: not read
    (root / "b" / "notes.txt").write_text("not an image")

    found, _, classes = find_images(root)
    expected = [
        p.relative_to(root).as_posix()
        for c in classes
        for p in sorted((root / c).rglob("*"))
        if p.suffix.lower() in EXTENSIONS
    ]
    assert [n.decode() for n in found] == expected
    assert "b/link/q.png" not in expected and expected.index("b/sub/z.png") < expected.index(
        "b/sub.png"
    )
    files = sorted(p for p in root.rglob("*") if p.is_file())
    listing = "".join(f"{p.relative_to(root).as_posix()}\0{p.stat().st_size}\n" for p in files)

    assert fingerprint(root)["sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    assert fingerprint(root)["files"] == len(files)
