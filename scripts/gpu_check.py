"""What only a GPU can show, in one command: bf16-mixed, torch.compile, DDP on one device and
trainlab's epoch against a hand-written loop, on a CIFAR-shaped image folder.

    scripts/gpu_check.sh                       # on a machine with a CUDA GPU, under 5 minutes
    python scripts/gpu_check.py --cpu --images 640 --doc /tmp/speed.md   # the CPU fallback

Writes a CIFAR-shaped folder (RGB 32x32 PNGs in 10 classes, ``bench_data.make_folder``), then
trains ``net=cnn`` on it for ``--epochs`` epochs in each way below, each ``python -m
trainlab.train`` in a fresh process as a user runs it, beside a hand-written loop over the same
files, decoding, net, batch size and workers (``bench_data.hand_loop``):

  hand fp32 / hand bf16     the plain loop, in float32 / under bfloat16 autocast
  fp32                      trainlab, precision 32-true
  bf16-mixed                trainlab, precision bf16-mixed
  bf16-mixed + compile      the same with model.compile=true (torch.compile of the net)
  DDP, one device           strategy ddp on one device (nccl on a GPU, gloo on the CPU)

An epoch is its training batches (validation left out); the table gives the median of the
epochs after the first (which holds the workers' start and compilation), the ratio to the hand
loop of the same precision, images a second, and the last validation accuracy: every way must
learn the task. The table, naming the card, torch and the command, replaces the part of
``--doc`` (default ``docs/speed.md``) between its ``gpu_check`` markers, or is added at its end.
Without a CUDA GPU (or with ``--cpu``) the same ways run on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_data import ROOT, make_folder, train

BEGIN, END = "<!-- gpu_check: begin -->", "<!-- gpu_check: end -->"
# way: (trainlab's overrides, or None for the hand loop; the hand loop it is compared with)
WAYS: dict[str, tuple[list[str] | None, str]] = {
    "hand fp32": (None, "hand fp32"),
    "hand bf16": (None, "hand bf16"),
    "fp32": (["trainer.precision=32-true"], "hand fp32"),
    "bf16-mixed": (["trainer.precision=bf16-mixed"], "hand bf16"),
    "bf16-mixed + compile": (["trainer.precision=bf16-mixed", "model.compile=true"], "hand bf16"),
    "DDP, one device": (["trainer.precision=bf16-mixed", "STRATEGY"], "hand bf16"),
}


def device_name(cpu: bool) -> str:
    import torch

    if not cpu and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def hand(root: str, epochs: int, workers: int, batch: int, device: str, bf16: bool) -> list[float]:
    """The hand loop's epochs, in a fresh process like every trainlab way."""
    code = (
        f"import sys, json; sys.path.insert(0, {str(ROOT / 'scripts')!r}); import bench_data; "
        f"print(json.dumps(bench_data.hand_loop({root!r}, {epochs}, {workers}, {batch}, "
        f"{device!r}, {bf16})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the hand loop failed:\n{done.stderr[-3000:]}")
    spans: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return spans


def measure(args: argparse.Namespace, root: Path, cpu: bool) -> list[dict[str, Any]]:
    device = "cpu" if cpu else "cuda"
    trainer = ["trainer=cpu"] if cpu else ["trainer=gpu"]
    strategy = ["trainer=ddp_cpu" if cpu else "trainer=ddp", "trainer.devices=1"]
    data = [
        "data=image_folder",
        f"data.root={root}",
        "data.channels=3",
        f"data.batch_size={args.batch}",
        f"data.num_workers={args.workers}",
        "net=cnn",
    ]
    rows = []
    for way, (overrides, _) in WAYS.items():
        start = time.time()
        if overrides is None:
            spans = hand(str(root), args.epochs, args.workers, args.batch, device, "bf16" in way)
            acc = None
        else:
            chosen = [o for o in overrides if o != "STRATEGY"]
            chosen += strategy if "STRATEGY" in overrides else trainer
            marks = train(
                [
                    *data,
                    *chosen,
                    f"trainer.max_epochs={args.epochs}",
                    "callbacks.early_stopping=null",
                    "+trainer.limit_val_batches=4",
                ]
            )
            spans = [end - begin for begin, end, _ in marks["epochs"]]
            acc = marks.get("val_acc")
        later = spans[1:] or spans
        rows.append({"way": way, "epoch_s": statistics.median(later), "acc": acc})
        print(f"  {way}: {spans} ({time.time() - start:.0f} s in all)", file=sys.stderr)
    return rows


def table(rows: list[dict[str, Any]], train_images: int, header: str) -> str:
    by_way = {r["way"]: r for r in rows}
    lines = [
        header,
        "",
        "| way | epoch s | vs hand loop | images/s | val acc |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        versus = by_way[WAYS[row["way"]][1]]["epoch_s"]
        acc = "" if row["acc"] is None else f"{row['acc']:.3f}"
        lines.append(
            f"| {row['way']} | {row['epoch_s']:.3f} | {row['epoch_s'] / versus:.2f}x | "
            f"{train_images / row['epoch_s']:.0f} | {acc} |"
        )
    return "\n".join(lines) + "\n"


def write_into(doc: Path, text: str) -> None:
    """``text`` between the doc's markers (added at its end the first time), written whole."""
    old = doc.read_text() if doc.exists() else ""
    block = f"{BEGIN}\n{text}{END}\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:
        new = old + ("\n" if old and not old.endswith("\n") else "") + "\n" + block
    part = doc.with_name(f".{doc.name}.part")
    part.write_text(new)
    os.replace(part, doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even with a GPU")
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "speed.md")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()
    import torch

    cpu = args.cpu or not torch.cuda.is_available()
    card = device_name(cpu)
    print(f"gpu_check on {card}", file=sys.stderr)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cifar"
        make_folder(root, args.images)
        rows = measure(args, root, cpu)
    train_images = round(args.images * 0.7)  # the data's default val and test fractions
    command = " ".join(["python scripts/gpu_check.py", *sys.argv[1:]])
    header = (
        f"**{card}**, torch {torch.__version__}, {time.strftime('%Y-%m')}: `{command}` "
        f"({args.images} CIFAR-shaped PNGs, net=cnn, batch {args.batch}, {args.workers} "
        f"workers, {args.epochs} epochs, {time.time() - started:.0f} s in all). Epoch: its "
        "training batches, median after the first; bf16 ways are compared with the bf16 hand "
        "loop."
    )
    text = table(rows, train_images, header)
    print(text)
    write_into(args.doc, text)
    if args.json:
        args.json.write_text(json.dumps({"device": card, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
