"""How much does trainlab cost over a hand-written PyTorch loop?

Trains the `digits_mlp` experiment (64 -> 256 -> 128 -> 10, ReLU, dropout 0.3, Adam lr 1e-3) for
the same number of epochs in several ways, each in a fresh process, interleaved and repeated so
that machine noise shows in the spread:

  hand            a hand-written loop over the same tensor batches, validating every epoch
  trainlab        the default path as `make train` runs it (callbacks, csv logger, checkpoints)
  callbacks=none  the same without trainlab's callbacks (Lightning's own defaults instead)
  lean            `debug=lean`: no callbacks, logger, checkpoints or progress bar

Every way builds the data and the net through trainlab under the same seed, so the three see the
same initial weights and the same batch order. Settings: batch 64, batch 512, and a wide net
(2048, 1024) at batch 512 where compute dominates. Then start-up times of the command line.

    python scripts/benchmark.py [--epochs 20] [--repeats 3] [--accelerator gpu] [--out results.md]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SETTINGS: dict[str, list[str]] = {
    "batch 64": ["data.batch_size=64"],
    "batch 512": ["data.batch_size=512"],
    "wide (2048, 1024), batch 512": ["data.batch_size=512", "net.hidden_sizes=[2048,1024]"],
}
WAYS: dict[str, list[str]] = {
    "hand": [],
    "trainlab": [],
    "callbacks=none": ["callbacks=none"],
    "lean": ["debug=lean"],
}
# ``--extra way=override,override`` adds a way of one's own, e.g. to time one callback.


# -- run inside a child process --------------------------------------------------------------
def _clock_callback() -> Any:
    import lightning.pytorch as pl

    class Clock(pl.Callback):
        """Epoch start to epoch start: training, validation, checkpoints and logging. The last
        epoch, which runs into the end-of-run reports, is left out."""

        def __init__(self) -> None:
            self.marks: list[float] = []

        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.marks.append(time.perf_counter())

    return Clock()


def _compose(overrides: list[str], out: Path) -> Any:
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from trainlab.runtime.configs import CONFIG_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides)
    with open_dict(cfg):
        cfg.paths.root_dir = str(out)
        cfg.paths.output_dir = str(out / "run")
    (out / "run").mkdir(parents=True, exist_ok=True)
    return cfg


def _test_accuracy(net: Any, dm: Any) -> float:
    import torch

    net.eval()
    x, y = dm.tensors("test")
    device = next(net.parameters()).device
    with torch.no_grad():
        return float((net(x.to(device)).argmax(1).cpu() == y).float().mean())


def child(way: str, setting: str, epochs: int, accelerator: str) -> dict[str, Any]:
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F

    from trainlab.runtime.build import build_data, build_net
    from trainlab.runtime.training import build_trainer, check_top_level

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    overrides = [
        "experiment=digits_mlp",
        f"trainer.max_epochs={epochs}",
        f"trainer.accelerator={accelerator}",
        *SETTINGS[setting],
    ]
    overrides += WAYS[way]
    if way == "trainlab":  # every way trains all epochs: early stopping stays on, never fires
        overrides.append("callbacks.early_stopping.patience=100000")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _compose(overrides, Path(tmp))
        check_top_level(cfg)
        pl.seed_everything(cfg.seed, verbose=False)
        dm = build_data(cfg)
        if way == "hand":
            device = torch.device("cuda" if accelerator == "gpu" else "cpu")
            net = build_net(cfg, dm.input_shape, dm.modality, dm.num_outputs).to(device)
            opt = torch.optim.Adam(net.parameters(), lr=cfg.model.optimizer.lr)
            train, val = dm.train_dataloader(), dm.val_dataloader()
            marks = [time.perf_counter()]
            for epoch in range(epochs):
                train.sampler.set_epoch(epoch)
                net.train()
                for x, y in train:
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    opt.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(net(x), y)
                    loss.backward()
                    opt.step()
                net.eval()
                correct = torch.zeros((), dtype=torch.long, device=device)
                with torch.no_grad():
                    for x, y in val:
                        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                        correct += (net(x).argmax(1) == y).sum()
                int(correct)  # read the validation result, as a real loop would
                marks.append(time.perf_counter())
            acc = _test_accuracy(net, dm)
        else:
            from trainlab.runtime.build import build_model, instantiate_dict

            model = build_model(cfg, dm)  # builds the net first, as the hand loop does
            clock = _clock_callback()
            callbacks = [*instantiate_dict(cfg.get("callbacks"), "callbacks"), clock]
            loggers = instantiate_dict(cfg.get("logger"), "logger")
            trainer = build_trainer(cfg, callbacks, loggers)
            trainer.fit(model, datamodule=dm)
            marks = clock.marks
            acc = _test_accuracy(model.net, dm)
    epoch_ms = [1000 * (b - a) for a, b in itertools.pairwise(marks)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"epoch_ms": epoch_ms, "test_acc": acc, "peak_mb": peak_mb}


# -- the parent ------------------------------------------------------------------------------
def _spawn(way: str, setting: str, epochs: int, accelerator: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", way, "--setting", setting, "--epochs", str(epochs)]
    cmd += [
        "--accelerator",
        accelerator,
        "--extra",
        *(f"{k}={','.join(v)}" for k, v in WAYS.items() if k not in ("hand",) and v),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{way} / {setting} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wall(cmd: list[str], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _first_step_seconds(repeats: int = 3) -> float:
    """Process start to the first training step of the default run."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            stamp = Path(tmp) / "first_step"
            env = {**os.environ, "TRAINLAB_ROOT": tmp, "PYTHONPATH": str(ROOT / "scripts")}
            cmd = [
                sys.executable,
                "-m",
                "trainlab.train",
                "trainer.max_epochs=1",
                "+callbacks.first_step._target_=bench_clock.FirstStepStamp",
                f"+callbacks.first_step.path={stamp}",
            ]
            start = time.time()
            subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT, env=env)
            times.append(float(stamp.read_text()) - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up figures")
    parser.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--ways", nargs="*", default=list(WAYS))
    parser.add_argument(
        "--extra", nargs="*", default=[], help="more ways: name=override,override,..."
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--setting", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for spec in args.extra:
        name, _, overrides = spec.partition("=")
        WAYS[name] = overrides.split(",")
    if args.child:
        print(json.dumps(child(args.child, args.setting, args.epochs, args.accelerator)))
        return

    lines = [
        f"Epoch time including validation, {args.epochs} epochs x {args.repeats} repeats "
        f"(median, min-max over all epochs after the first), {os.cpu_count()} CPU cores, "
        f"accelerator {args.accelerator}. 'min vs min' compares the fastest epochs, which "
        "bursts of load from other processes touch least.",
        "",
        "| setting | way | epoch ms | min-max ms | vs hand | min vs min | test acc | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for setting in args.settings:
        ways = ["hand", *(w for w in args.ways if w != "hand")]
        results: dict[str, list[dict[str, Any]]] = {w: [] for w in ways}
        for _ in range(args.repeats):  # interleaved: noise hits every way alike
            for way in ways:
                results[way].append(_spawn(way, setting, args.epochs, args.accelerator))
                print(f"  {setting} / {way}: done", file=sys.stderr)
        hand = [t for r in results["hand"] for t in r["epoch_ms"][1:]]
        for way in ways:
            times = [t for r in results[way] for t in r["epoch_ms"][1:]]
            med = statistics.median(times)
            accs = [r["test_acc"] for r in results[way]]
            lines.append(
                f"| {setting} | {way} | {med:.1f} | {min(times):.1f}-{max(times):.1f} | "
                f"{med / statistics.median(hand):.2f}x | {min(times) / min(hand):.2f}x | "
                f"{statistics.mean(accs):.4f} | "
                f"{max(r['peak_mb'] for r in results[way]):.0f} |"
            )
    if not args.no_startup:
        py = sys.executable
        startup = {
            "`python -c 'import torch, lightning'`": _wall([py, "-c", "import torch, lightning"]),
            "`python -m trainlab.train --help`": _wall([py, "-m", "trainlab.train", "--help"]),
            "`python -m trainlab.train --cfg job`": _wall(
                [py, "-m", "trainlab.train", "--cfg", "job"]
            ),
            "process start to first training step": _first_step_seconds(),
        }
        lines += ["", "| start-up | seconds |", "|---|---:|"]
        lines += [f"| {name} | {seconds:.2f} |" for name, seconds in startup.items()]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
