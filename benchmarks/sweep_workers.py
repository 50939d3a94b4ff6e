"""Wall time of one ``ratt sweep`` grid with ``--workers 1`` and ``--workers 2`` (issue 18),
measured in one run: the two are interleaved (1, 2, 1, 2, ...), each into a fresh directory,
through the ``ratt`` command exactly as a user types it; the median of each is compared.

    python benchmarks/sweep_workers.py                       # 4 digits cells, 1 repeat each
    python benchmarks/sweep_workers.py --repeats 3 --keep /tmp/sweep-bench

Prints the commands, the machine (CPU, cores, load average before and after), each timing, a
Markdown table for benchmarks/README.md, and whether both sweeps' test accuracies agree
(they agree bit for bit when the cells' ``run.threads`` is the same; by default it is not:
``--workers 1`` leaves torch's default, ``--workers 2`` gives each cell cores // 2 threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OVERRIDES = "epochs=3 val_attack_steps=3 test_attacks=clean,pgd10"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _accuracies(root: Path) -> dict[str, dict]:
    return {
        p.parent.relative_to(root).as_posix(): json.loads(p.read_text())["test"]["accuracy"]
        for p in sorted(root.rglob("summary.json"))
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default="trades,rat_trades")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--datasets", default="digits")
    parser.add_argument("--overrides", default=DEFAULT_OVERRIDES, help="config overrides of every cell")
    parser.add_argument("--workers", default="1,2", help="comma list of --workers values to compare")
    parser.add_argument("--repeats", type=int, default=1, help="sweeps per --workers value (interleaved)")
    parser.add_argument("--keep", help="keep the sweeps' directories under this folder")
    args = parser.parse_args()

    ratt = shutil.which("ratt") or f"{sys.executable} -m ratt"
    workers = [int(w) for w in args.workers.split(",")]
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    grid = ["--methods", args.methods, "--seeds", args.seeds, "--datasets", args.datasets]
    print(f"# machine: {_cpu()}, {os.cpu_count()} cores, {platform.platform()}; load before: {_load()}")
    times: dict[int, list[float]] = {w: [] for w in workers}
    accuracies: dict[int, dict] = {}
    for repeat in range(args.repeats):
        for w in workers:
            out = base / f"workers-{w}-{repeat}"
            shutil.rmtree(out, ignore_errors=True)
            command = [*ratt.split(), "sweep", "--quiet", "--out", str(out), "--workers", str(w), *grid,
                       *args.overrides.split()]  # fmt: skip
            print("$", " ".join(command), flush=True)
            start = time.perf_counter()
            done = subprocess.run(command, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                print(f"sweep failed with exit code {done.returncode}", file=sys.stderr)
                return 1
            times[w].append(seconds)
            accuracies[w] = _accuracies(out)
            print(f"  --workers {w}: {seconds:.1f} s", flush=True)
    print(f"# load after: {_load()}")
    cells = len(accuracies[workers[0]])
    first = statistics.median(times[workers[0]])
    print(f"\n| --workers | cells | wall (median of {args.repeats}) | runs | speed-up |")
    print("| ---: | ---: | ---: | --- | ---: |")
    for w in workers:
        median = statistics.median(times[w])
        runs = ", ".join(f"{t:.1f}" for t in times[w])
        print(f"| {w} | {cells} | {median:.1f} s | {runs} | {first / median:.2f}x |")
    same = all(accuracies[w] == accuracies[workers[0]] for w in workers)
    print(f"\ntest accuracies identical across --workers: {same}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
