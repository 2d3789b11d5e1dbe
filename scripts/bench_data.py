"""Data at scale: image folders of 10^5 files, packed data, data larger than memory.

    python scripts/bench_data.py folder --images 100000 --dest /tmp/cifar100k
    python scripts/bench_data.py startup --root /tmp/cifar100k        # command -> first step
    python scripts/bench_data.py epoch --root /tmp/cifar100k          # trainlab vs a hand loop
    python scripts/bench_data.py memory --roots /tmp/cifar25k /tmp/cifar100k
    python scripts/bench_data.py packed --root /tmp/cifar100k --dest /tmp/cifar100k.packed
    python scripts/bench_data.py cgroup --dest /tmp/big.packed --gib 3 --cap-gib 1.5

``folder`` writes a CIFAR-shaped folder: N RGB 32x32 PNGs in 10 class folders (a colour per
class under noise, so that the files compress like photographs, about 3 KB each). Each
measurement runs ``python -m trainlab.train`` in a fresh process, as a user would, with
``net=cnn`` and the data's default two workers; the hand-written loop (:func:`hand_loop`)
reads the same files with the same decoding (``ImageFiles``), the same net, batch size and
workers, and steps Adam on cross-entropy: the work a training step cannot avoid.
``cgroup`` runs one epoch inside a cgroup (v1 or v2) whose memory limit is smaller than the
packed data, and needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [
    "seed=0",
    "callbacks.progress_bar=null",
    "callbacks.calibration=null",
    "baselines=false",
    "test=false",
]


# -- inside the training process (PYTHONPATH=scripts) -----------------------------------------
def _marks_callback() -> Any:
    import lightning.pytorch as pl

    class Marks(pl.Callback):
        """Writes when the first training step started and each training epoch's span (its
        batches, not its validation) as seconds since ``BENCH_T0``, the moment the command
        was started."""

        def __init__(self, path: str) -> None:
            self.path, self.t0 = Path(path), float(os.environ["BENCH_T0"])
            self.marks: dict[str, Any] = {"epochs": []}
            self._start = 0.0

        def _now(self) -> float:
            return time.time() - self.t0

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, i: int) -> None:
            self.marks.setdefault("first_step", self._now())

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._start = self._now()

        def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking:
                batches = trainer.num_training_batches
                self.marks["epochs"].append([self._start, self._now(), batches])
                self.path.write_text(json.dumps(self.marks))

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            acc = trainer.callback_metrics.get("val/acc")
            if not trainer.sanity_checking and acc is not None and trainer.is_global_zero:
                self.marks["val_acc"] = float(acc)
                self.path.write_text(json.dumps(self.marks))

    return Marks


Marks = _marks_callback() if "BENCH_T0" in os.environ else None


# -- the hand-written loop -------------------------------------------------------------------
def hand_loop(
    root: str, epochs: int, workers: int, batch: int, device: str = "cpu", bf16: bool = False
) -> list[float]:
    """Seconds of each epoch's training batches: the image folder's files, decoding and net,
    in a plain loop (on ``device``; ``bf16``: under bfloat16 autocast, as Lightning's
    ``bf16-mixed`` precision runs)."""
    import contextlib

    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader

    from trainlab.data import ImageFolderDataModule
    from trainlab.data.image_folder import collate_images

    torch.manual_seed(0)
    dm = ImageFolderDataModule(root, channels=3, batch_size=batch, num_workers=workers)
    dm.setup()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        net_cfg = compose(config_name="train", overrides=["net=cnn"]).net
    assert dm.input_shape is not None and dm.num_outputs is not None
    net = instantiate(net_cfg)(dm.input_shape, dm.num_outputs).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loader = DataLoader(
        dm.datasets["train"],
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        collate_fn=collate_images,
    )
    spans = []
    net.train()
    for _ in range(epochs):
        start = time.perf_counter()
        for x, y, _bad in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            cast = torch.autocast(torch.device(device).type, torch.bfloat16) if bf16 else None
            with cast or contextlib.nullcontext():
                loss = torch.nn.functional.cross_entropy(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        float(loss)  # wait for the device's queue, as a loop that logs its loss does
        spans.append(time.perf_counter() - start)
    return spans


# -- measurements ----------------------------------------------------------------------------
def make_folder(dest: Path, images: int) -> None:
    from multiprocessing import Pool

    dest.mkdir(parents=True)
    for label in range(10):
        (dest / f"class{label}").mkdir()
    with Pool(os.cpu_count()) as pool:
        pool.map(
            _write_pngs, [(str(dest), i, min(i + 1000, images)) for i in range(0, images, 1000)]
        )


def _write_pngs(job: tuple[str, int, int]) -> None:
    import numpy as np
    from PIL import Image

    dest, start, end = job
    rng = np.random.default_rng(start)
    for i in range(start, end):
        label = i % 10
        colour = np.array([(label * 25) % 256, (label * 70) % 256, 255 - label * 25])
        pixels = np.clip(colour + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(f"{dest}/class{label}/{i:07d}.png")


def _tree_pss_mb(pid: int) -> float:
    """Proportional set size of a process and its descendants (shared pages counted once)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def train(
    overrides: list[str], prefix: list[str] | None = None, memory: bool = False
) -> dict[str, Any]:
    """One ``python -m trainlab.train`` in a fresh process: its marks, wall time and, with
    ``memory``, its peak memory (PSS of the process tree, sampled every 0.1 s: reading
    ``smaps_rollup`` holds each process's memory map lock, and slows an epoch by a quarter,
    so the timings are taken without it)."""
    with tempfile.TemporaryDirectory() as tmp:
        marks = Path(tmp) / "marks.json"
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'scripts'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "TRAINLAB_ROOT": tmp,
            "BENCH_T0": repr(time.time()),
            "WANDB_MODE": "offline",
        }
        command = [sys.executable, "-m", "trainlab.train", *TRAIN, *overrides]
        command += ["+callbacks.bench._target_=bench_data.Marks", f"+callbacks.bench.path={marks}"]
        start = time.time()
        job = subprocess.Popen(
            [*(prefix or []), *command],
            env=env,
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        peak = [0.0]

        def sample() -> None:
            while job.poll() is None:
                peak[0] = max(peak[0], _tree_pss_mb(job.pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        if memory:
            sampler.start()
        _out, err = job.communicate()
        if memory:
            sampler.join()
        if job.returncode != 0:
            raise SystemExit(f"training failed ({job.returncode}):\n{err[-3000:]}")
        found = json.loads(marks.read_text()) if marks.exists() else {}
        return {**found, "wall": time.time() - start, "peak_pss_mb": peak[0]}


def startup(root: str, repeats: int) -> list[float]:
    data = ["data=image_folder", f"data.root={root}", "data.channels=3", "net=cnn"]
    short = [
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=5",
        "+trainer.limit_val_batches=1",
    ]
    return [train([*data, *short])["first_step"] for _ in range(repeats)]


def epoch(root: str, data: list[str], batch: int) -> float:
    """Seconds of the second epoch's training batches (the workers started, pages cached)."""
    marks = train(
        [
            *data,
            f"data.batch_size={batch}",
            "trainer.max_epochs=2",
            "callbacks.early_stopping=null",
            "+trainer.limit_val_batches=2",
        ]
    )
    return float(marks["epochs"][1][1] - marks["epochs"][1][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("folder")
    p.add_argument("--images", type=int, default=100_000)
    p.add_argument("--dest", type=Path, required=True)
    p = sub.add_parser("startup")
    p.add_argument("--root", required=True)
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("epoch")
    p.add_argument("--root", required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--extra", nargs="*", default=[], help="more overrides for trainlab's run")
    p = sub.add_parser("memory")
    p.add_argument("--roots", nargs="+", required=True)
    p = sub.add_parser("packed")
    p.add_argument("--root", required=True)
    p.add_argument("--dest", type=Path, required=True)
    p.add_argument("--nets", nargs="+", default=["linear:64", "mlp:256", "cnn:64"])
    p = sub.add_parser("cgroup")
    p.add_argument("--dest", type=Path, required=True)
    p.add_argument("--gib", type=float, default=3.0)
    p.add_argument("--cap-gib", type=float, default=1.5)
    args = parser.parse_args()
    image = ["data=image_folder", "data.channels=3", "net=cnn"]

    if args.what == "folder":
        start = time.time()
        make_folder(args.dest, args.images)
        print(f"wrote {args.images} PNGs into {args.dest} in {time.time() - start:.1f} s")
    elif args.what == "startup":
        times = startup(args.root, args.repeats)
        print(f"command to first training step: median {statistics.median(times):.2f} s {times}")
    elif args.what == "epoch":
        ours, hands = [], []
        for _ in range(args.repeats):  # interleaved, so that machine noise touches both
            data = [*image, f"data.root={args.root}", *args.extra]
            ours.append(epoch(args.root, data, args.batch))
            hands.append(_hand_in_child(args.root, args.batch))
        o, h = statistics.median(ours), statistics.median(hands)
        print(
            f"epoch of training batches: trainlab {o:.1f} s {ours}, hand loop {h:.1f} s "
            f"{hands}; throughput trainlab/hand {h / o:.2f}x"
        )
    elif args.what == "memory":
        for root in args.roots:
            files = sum(len(f) for _, _, f in os.walk(root))
            marks = train(
                [
                    *image,
                    f"data.root={root}",
                    "trainer.max_epochs=1",
                    "+trainer.limit_train_batches=300",
                    "+trainer.limit_val_batches=50",
                ],
                memory=True,
            )
            print(f"{files} images: peak PSS of the process tree {marks['peak_pss_mb']:.0f} MB")
    elif args.what == "packed":
        if not args.dest.exists():
            start = time.time()
            done = subprocess.run(
                [sys.executable, "-m", "trainlab.pack", "images", args.root, str(args.dest)],
                check=True,
                capture_output=True,
                text=True,
            )
            print(done.stdout.strip().splitlines()[0], f"in {time.time() - start:.1f} s")
        png_data = ["data=image_folder", "data.channels=3", f"data.root={args.root}"]
        packed_data = ["data=packed", f"data.path={args.dest}"]  # read in the main process
        png, packed = _read_epoch(png_data), _read_epoch(packed_data)
        print(
            f"reading the training split (no net; PNG in 2 workers, packed in the training "
            f"process): PNG {png:.1f} s, packed {packed:.1f} s: {png / packed:.1f}x faster"
        )
        for setting in args.nets:  # net:batch
            net, _, batch = setting.partition(":")
            png = epoch(args.root, [*png_data, f"net={net}"], int(batch))
            packed = epoch(args.root, [*packed_data, f"net={net}"], int(batch))
            print(
                f"epoch of training batches, net={net}, batch {batch}: PNG {png:.1f} s, "
                f"packed {packed:.1f} s: {png / packed:.1f}x faster"
            )
    elif args.what == "cgroup":
        cgroup_epoch(args.dest, args.gib, args.cap_gib)


def _read_epoch(data: list[str]) -> float:
    """Seconds to read the training split once through the DataModule's loader, in a fresh
    process (the second pass: workers started, pages cached)."""
    code = f"""
import time
from hydra import compose, initialize_config_dir
from trainlab.runtime.build import build_data
from trainlab.runtime.configs import register_resolvers
register_resolvers()
with initialize_config_dir(config_dir={str(ROOT / "conf")!r}, version_base="1.3"):
    cfg = compose(config_name="train", overrides={data!r})
loader = build_data(cfg).train_dataloader()
for epoch in range(2):
    loader.sampler.set_epoch(epoch)
    start = time.perf_counter()
    for batch in loader:
        pass
print(time.perf_counter() - start)
"""
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def _hand_in_child(root: str, batch: int) -> float:
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); import bench_data; "
        f"print(bench_data.hand_loop({root!r}, 2, 2, {batch})[1])"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def write_packed(dest: Path, rows: int, shape: tuple[int, ...]) -> None:
    """A packed dataset of ``rows`` random uint8 images, written shard by shard."""
    import numpy as np

    from trainlab.pack import ShardWriter, staged

    with staged(dest) as stage:
        writer = ShardWriter(stage, shape, "uint8", 16_384)
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 10, rows)
        for start in range(0, rows, 4096):
            n = min(4096, rows - start)
            base = (labels[start : start + n] * 25).astype(np.uint8).reshape(-1, 1, 1, 1)
            writer.add(base + rng.integers(0, 30, (n, *shape), dtype=np.uint8))
        writer.flush()
        np.save(stage / "labels.npy", labels, allow_pickle=False)
        meta = {
            "format": "trainlab-packed",
            "version": 1,
            "kind": "image",
            "task": "classification",
            "shape": list(shape),
            "class_names": [f"class{i}" for i in range(10)],
            "count": rows,
            "shards": writer.shards,
        }
        (stage / "meta.json").write_text(json.dumps(meta))


def cgroup_epoch(dest: Path, gib: float, cap_gib: float) -> None:
    """One epoch over ``gib`` GiB of packed images in a cgroup limited to ``cap_gib`` GiB."""
    shape = (3, 64, 64)
    rows = int(gib * 2**30 // (3 * 64 * 64))
    if not dest.exists():
        write_packed(dest, rows, shape)
    size = sum(f.stat().st_size for f in dest.iterdir()) / 2**30
    group = Path("/sys/fs/cgroup/memory/trainlab-bench")  # cgroup v1 here
    v2 = Path("/sys/fs/cgroup/trainlab-bench")
    limit = int(cap_gib * 2**30)
    if Path("/sys/fs/cgroup/memory").is_dir():
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(limit))
        swap = group / "memory.memsw.limit_in_bytes"  # memory and swap together, if present
        if swap.exists():
            swap.write_text(str(limit))
        peak_file, procs = group / "memory.max_usage_in_bytes", group / "cgroup.procs"
    else:
        v2.mkdir()
        (v2 / "memory.max").write_text(str(limit))
        (v2 / "memory.swap.max").write_text("0")
        peak_file, procs = v2 / "memory.peak", v2 / "cgroup.procs"
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("1")  # nothing of the data in memory
    enter = ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh"]
    start = time.time()
    marks = train(
        [
            "data=packed",
            f"data.path={dest}",
            "trainer.max_epochs=1",
            "net=linear",  # the data's cost, not a net's
            "data.batch_size=256",
            "+trainer.limit_val_batches=2",
        ],
        prefix=enter,
        memory=True,
    )
    peak = int(peak_file.read_text()) / 2**30
    peak_file.parent.rmdir()  # the cgroup this script made, empty again
    span = marks["epochs"][0]
    print(
        f"one epoch over {size:.2f} GiB of packed data ({rows} images {shape}) in a cgroup "
        f"limited to {cap_gib} GiB: {span[2]} batches in {span[1] - span[0]:.1f} s "
        f"(run {time.time() - start:.1f} s); cgroup peak {peak:.2f} GiB"
    )


if __name__ == "__main__":
    main()
