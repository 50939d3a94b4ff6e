"""Data at any size (issue 32): loader throughput, a ResNet-50 step's appetite, the anonymous
memory of a run with packed extra data, step time packed vs in memory, and the memory of
evaluating a folder's test split streamed vs held whole.

    python benchmarks/data_at_scale.py loader --images 512 --workers 0,1,2
    python benchmarks/data_at_scale.py loader --images 512 --workers 0,1,2 --decoders pil,torchvision
    python benchmarks/data_at_scale.py step --batch 8 --steps 10
    python benchmarks/data_at_scale.py rss --sizes 100000,1000000
    python benchmarks/data_at_scale.py rss --sizes 100000,1000000 --ranks 2
    python benchmarks/data_at_scale.py steptime --size 100000
    python benchmarks/data_at_scale.py evalrss --images 4000

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


def _epoch_seconds(train, plan, workers: int) -> tuple[int, float]:
    """(images, seconds) of one epoch of ``train`` through the trainer's ``StreamFeed``."""
    import torch

    from ratt.data.stream import StreamBatches
    from ratt.train.feed import StreamFeed

    feed = StreamFeed(StreamBatches(train, None, "none", 0), plan, (0, 1), torch.device("cpu"), workers, 2)
    start, seen = time.perf_counter(), 0
    for x, _ in feed.epoch(0, 0, plan.epoch_orders(0)):
        seen += len(x)
    return seen, time.perf_counter() - start


def loader(args: argparse.Namespace) -> None:
    """Images/s of the streamed ImageNet training transform (decode, RandomResizedCrop, flip),
    per worker count and per ``data.decoder`` (``--decoders``; each worker count runs the
    decoders one after the other, so a pair shares the machine's load)."""
    from ratt.config import DataConfig
    from ratt.config.sections import DECODERS
    from ratt.data import info_for
    from ratt.data.splits import folder_source
    from ratt.data.stream import LazyDataset
    from ratt.train.batches import BatchPlan

    decoders = args.decoders.split(",")
    if not set(decoders) <= set(DECODERS):
        raise SystemExit(f"--decoders: each one of {', '.join(DECODERS)}")
    with tempfile.TemporaryDirectory() as tmp:
        make_jpegs(Path(tmp), args.images)
        (Path(tmp) / "val").symlink_to(Path(tmp) / "train")
        trains = {}
        for decoder in decoders:
            section = DataConfig(name="imagenet", root=tmp, decoder=decoder)
            train = LazyDataset(folder_source(section, "train"), info_for(section), augments_itself=True)
            train.fetch(np.arange(2), np.arange(2, dtype=np.uint64))  # imports and caches outside the timing
            trains[decoder] = train
        plan = BatchPlan(n_train=len(train), batch=args.batch, seed=0)
        for workers in (int(w) for w in args.workers.split(",")):
            for decoder, train in trains.items():
                seen, seconds = _epoch_seconds(train, plan, workers)
                _say(what="loader", decoder=decoder, workers=workers, images=seen, seconds=round(seconds, 2),
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


def _rss_anon(pid: int) -> int:
    """RssAnon of process ``pid`` in bytes (0 once it has gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        return next(int(line.split()[1]) for line in lines if line.startswith("RssAnon:")) * 1024
    except (OSError, StopIteration):
        return 0


def _ranks_of(parent: int) -> dict[str, int]:
    """The torchrun workers among ``parent``'s children (found by their parent pid in
    ``/proc/PID/stat``), keyed by the RANK in their environment: their own DataLoader workers
    are grandchildren of ``parent`` and not among them."""
    ranks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rpartition(")")[2].split()[1]) != parent:
                continue
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        rank = next((item[5:].decode() for item in environ if item.startswith(b"RANK=")), None)
        if rank is not None:  # None: forked, not yet exec'd with torchrun's environment
            ranks[rank] = int(stat.parent.name)
    return ranks


def _peak_rss_anon(cmd: list[str], *, ranks: int = 1, env: dict | None = None) -> tuple[dict, float]:
    """Peak RssAnon (bytes, sampled every 50 ms) of the command's process ({"main": peak}), or
    with ``ranks`` > 1 of each rank torchrun starts ({"0": peak, "1": peak, ...}; DataLoader
    workers not counted), and the command's wall time. Its stderr is shown if it fails."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
        watched, peaks = {}, {}
        while proc.poll() is None:
            if len(watched) < ranks:  # the ranks are found once torchrun has started them all
                watched = {"main": proc.pid} if ranks == 1 else _ranks_of(proc.pid)
            for name, pid in watched.items():
                peaks[name] = max(peaks.get(name, 0), _rss_anon(pid))
            time.sleep(0.05)
        log.seek(0)
        assert proc.returncode == 0 and len(peaks) == ranks, (cmd, peaks, log.read()[-3000:])
    return peaks, time.perf_counter() - start


TRAIN = ["train", "--quiet", "epochs=1", "train_limit=256", "batch_size=64", "steps=1", "val_attack_steps=1",
         "test_attacks=clean", "threads=1", "data.extra_fraction=0.5"]  # fmt: skip


def rss(args: argparse.Namespace) -> None:
    """Peak RssAnon of one training process, or of each of ``--ranks`` torchrun ranks (gloo on
    CPU), with data.extra packed (streamed) vs the .npz (in memory)."""
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    launch, env = [sys.executable], None
    if args.ranks > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                  str(args.ranks)]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for size in (int(s) for s in args.sizes.split(",")):
        npz, packed = _extra_files(root, size)
        for label, extra, stream in (("packed", packed, "true"), ("npz_in_memory", npz, "false")):
            out = tempfile.mkdtemp(dir=root)
            cmd = [*launch, "-m", "ratt", *TRAIN, "--out", out, f"data.extra={extra}",
                   f"data.stream={stream}", "data.workers=1", f"run.max_steps={args.max_steps}"]  # fmt: skip
            peaks, seconds = _peak_rss_anon(cmd, ranks=args.ranks, env=env)
            for name in sorted(peaks, key=lambda name: int(name) if name.isdigit() else -1):
                rank = {} if args.ranks == 1 else {"ranks": args.ranks, "rank": int(name)}
                _say(what="rss_anon", extra=label, images=size, **rank,
                     peak_rss_anon_mib=round(peaks[name] / 2**20, 1), seconds=round(seconds, 1))  # fmt: skip


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


def _evaluate_test_split(root: Path, held: bool) -> None:
    """(child process) Clean accuracy of a pooling-and-linear model on the folder's val/ split
    at 224 x 224, streamed (the lazy split) or read whole first (``held``)."""
    import torch

    from ratt import data
    from ratt.attacks import ThreatModel
    from ratt.config import DataConfig
    from ratt.eval import evaluate

    torch.set_num_threads(1)
    section = DataConfig(name="imagenet", root=str(root), image_size=224, resize=256)
    test = data.load_for(section, "test", lazy=True)
    test = test.in_memory() if held else test
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 10))
    evaluate(model, test, ["clean"], ThreatModel(eps=4 / 255, step=1 / 255, norm="linf"), batch_size=250)


def evalrss(args: argparse.Namespace) -> None:
    """Peak RssAnon of one evaluation of an image folder's test split (``val/``, 256-pixel
    JPEGs evaluated at 224 x 224) held whole vs read batch by batch, in fresh processes."""
    root = Path(args.dir) / f"evalfolder{args.images}"
    if not (root / "val").is_dir():
        make_jpegs(root, args.images, size=256)
        (root / "train").rename(root / "val")
        make_jpegs(root, 10, size=256)  # train/ must exist with the same class folders
    for label, held in (("streamed", False), ("held_whole", True)):
        cmd = [sys.executable, __file__, "evalrss-child", "--dir", str(root), *(["--held"] if held else [])]
        peaks, seconds = _peak_rss_anon(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
        _say(what="eval_rss_anon", test_split=label, images=args.images,
             peak_rss_anon_mib=round(peaks["main"] / 2**20, 1), seconds=round(seconds, 1))  # fmt: skip


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("loader")
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", default="0,1,2")
    p.add_argument("--decoders", default="pil", help="data.decoder values, comma-separated (pil,torchvision)")
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
        if name == "rss":
            p.add_argument("--ranks", type=int, default=1, help="torchrun ranks (default 1: no torchrun)")
    p = sub.add_parser("evalrss")
    p.add_argument("--dir", default="/tmp/ratt-data-bench")
    p.add_argument("--images", type=int, default=4000)
    p = sub.add_parser("evalrss-child")
    p.add_argument("--dir", required=True)
    p.add_argument("--held", action="store_true")
    args = parser.parse_args()
    if args.what == "evalrss-child":
        return _evaluate_test_split(Path(args.dir), args.held)
    _say(what="load_average", one_five_fifteen=os.getloadavg(), cores=os.cpu_count())
    {"loader": loader, "step": step, "rss": rss, "steptime": steptime, "evalrss": evalrss}[args.what](args)


if __name__ == "__main__":
    main()
