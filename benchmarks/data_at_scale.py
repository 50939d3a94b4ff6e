"""Data at any size (issue 32): loader throughput, a ResNet-50 step's appetite, the anonymous
memory of a run with packed extra data, and step time packed vs in memory.

    python benchmarks/data_at_scale.py loader --images 512 --workers 0,1,2
    python benchmarks/data_at_scale.py step --batch 8 --steps 10
    python benchmarks/data_at_scale.py rss --sizes 100000,1000000
    python benchmarks/data_at_scale.py steptime --size 100000

Each prints one JSON line per measurement (and the machine's load average first).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _say(**row) -> None:
    print(json.dumps(row), flush=True)


def make_jpegs(folder: Path, count: int, size: int = 224, classes: int = 10) -> None:
    """``count`` photo-like JPEGs (smooth random fields plus noise, quality 90) of size² pixels
    in ``folder/train/cNN/``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(count):
        low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(low).resize((size, size), Image.BICUBIC)
        noisy = np.clip(np.asarray(image, np.int16) + rng.integers(-12, 13, (size, size, 3)), 0, 255)
        target = folder / "train" / f"c{k % classes:02d}"
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(noisy.astype(np.uint8)).save(target / f"{k:06d}.JPEG", quality=90)


def loader(args: argparse.Namespace) -> None:
    """Images/s of the streamed ImageNet training transform (decode, RandomResizedCrop, flip)."""
    import torch

    from ratt.config import DataConfig
    from ratt.data import info_for
    from ratt.data.splits import folder_source
    from ratt.data.stream import LazyDataset, StreamBatches
    from ratt.train.batches import BatchPlan
    from ratt.train.feed import StreamFeed

    with tempfile.TemporaryDirectory() as tmp:
        make_jpegs(Path(tmp), args.images)
        (Path(tmp) / "val").symlink_to(Path(tmp) / "train")
        section = DataConfig(name="imagenet", root=tmp)
        train = LazyDataset(folder_source(section, "train"), info_for(section), augments_itself=True)
        plan = BatchPlan(n_train=len(train), batch=args.batch, seed=0)
        train.fetch(np.arange(2), np.arange(2, dtype=np.uint64))  # imports and caches outside the timing
        for workers in (int(w) for w in args.workers.split(",")):
            batches = StreamBatches(train, None, "none", 0)
            feed = StreamFeed(batches, plan, (0, 1), torch.device("cpu"), workers, 2)
            start, seen = time.perf_counter(), 0
            for x, _ in feed.epoch(0, 0, plan.epoch_orders(0)):
                seen += len(x)
            seconds = time.perf_counter() - start
            _say(what="loader", workers=workers, images=seen, seconds=round(seconds, 2),
                 images_per_second=round(seen / seconds, 1))  # fmt: skip


def step(args: argparse.Namespace) -> None:
    """Images/s a ResNet-50 (torchvision) PGD-AT step consumes at 224x224 (ratt's TrainStep)."""
    from ratt.bench.steps import BenchConfig, bench_methods

    config = BenchConfig(methods=["pgd_at"], model="torchvision.models:resnet50", batch=args.batch,
                         shape=(3, 224, 224), classes=1000, steps=args.steps, repeats=args.repeats,
                         warmup=1, device=args.device)  # fmt: skip
    result = bench_methods(config)["pgd_at"]
    _say(what="resnet50_pgd_at_step", batch=args.batch, attack_steps=args.steps, device=args.device,
         seconds=round(result["seconds"], 2),
         images_per_second=round(result["images_per_second"], 3))  # fmt: skip


def _extra_files(root: Path, size: int) -> tuple[Path, Path]:
    """``size`` digits-sized (8x8 uint8) extra images as an .npz and as a packed directory."""
    npz, packed = root / f"extra{size}.npz", root / f"extra{size}"
    if not npz.exists():
        rng = np.random.default_rng(size)
        np.savez(npz, x=rng.integers(0, 256, (size, 8, 8), dtype=np.uint8), y=rng.integers(0, 10, size))
    if not (packed / "index.json").exists():
        cmd = [sys.executable, "-m", "ratt", "data", "pack", str(npz), "--out", str(packed)]
        subprocess.run(cmd, check=True)
    return npz, packed


def _peak_rss_anon(cmd: list[str]) -> tuple[int, float]:
    """Peak RssAnon (bytes, sampled every 50 ms) of the command's process, and its wall time."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("RssAnon:"))
            peak = max(peak, kib * 1024)
        except (OSError, StopIteration):
            pass
        time.sleep(0.05)
    assert proc.returncode == 0, cmd
    return peak, time.perf_counter() - start


TRAIN = ["train", "--quiet", "epochs=1", "train_limit=256", "batch_size=64", "steps=1", "val_attack_steps=1",
         "test_attacks=clean", "threads=1", "data.extra_fraction=0.5"]  # fmt: skip


def rss(args: argparse.Namespace) -> None:
    """Peak RssAnon of one training process with data.extra packed (streamed) vs the .npz (in memory)."""
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    for size in (int(s) for s in args.sizes.split(",")):
        npz, packed = _extra_files(root, size)
        for label, extra, stream in (("packed", packed, "true"), ("npz_in_memory", npz, "false")):
            out = tempfile.mkdtemp(dir=root)
            cmd = [sys.executable, "-m", "ratt", *TRAIN, "--out", out, f"data.extra={extra}",
                   f"data.stream={stream}", "data.workers=1", f"run.max_steps={args.max_steps}"]  # fmt: skip
            peak, seconds = _peak_rss_anon(cmd)
            _say(what="rss_anon", extra=label, images=size, peak_rss_anon_mib=round(peak / 2**20, 1),
                 seconds=round(seconds, 1))  # fmt: skip


def steptime(args: argparse.Namespace) -> None:
    """Training seconds per step with data.extra packed and streamed vs the .npz in memory."""
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    npz, packed = _extra_files(root, args.size)
    for label, extra, stream in (("npz_in_memory", npz, "false"), ("packed", packed, "true")):
        out = Path(tempfile.mkdtemp(dir=root))
        cmd = [sys.executable, "-m", "ratt", *TRAIN, "--out", str(out), f"data.extra={extra}",
               f"data.stream={stream}", "data.workers=1"]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
        steps = -(-256 // 32)
        _say(what="step_time", extra=label, seconds_per_step=round(row["train_seconds"] / steps, 4))


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("loader")
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", default="0,1,2")
    p = sub.add_parser("step")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    for name in ("rss", "steptime"):
        p = sub.add_parser(name)
        p.add_argument("--dir", default="/tmp/ratt-data-bench")
        p.add_argument("--sizes", default="100000,1000000")
        p.add_argument("--size", type=int, default=100000)
        p.add_argument("--max-steps", type=int, default=8)
    args = parser.parse_args()
    _say(what="load_average", one_five_fifteen=os.getloadavg(), cores=os.cpu_count())
    {"loader": loader, "step": step, "rss": rss, "steptime": steptime}[args.what](args)


if __name__ == "__main__":
    main()
