"""Start-up time of ``ratt list`` against ``import torch`` (issue 28: keep it within 1.5x).

Each repeat runs, in fresh interpreters, interleaved: ``python -c "import torch"`` and
``python -m ratt list`` (output discarded), and times the whole process. The medians are
compared; the script exits 1 when the ratio passes ``--limit``.

    python benchmarks/startup.py                # 5 repeats, limit 1.5
    python benchmarks/startup.py --repeats 9

Prints the machine (cores, load average), each timing and a Markdown row for
benchmarks/README.md. The test suite guards the cause instead of the time:
tests/cli/test_startup.py checks that ``ratt list`` imports none of the heavy optional
packages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "ratt list": [sys.executable, "-m", "ratt", "list"],
}


def _seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--limit", type=float, default=1.5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, command in COMMANDS.items():
            times[name].append(_seconds(command))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["ratt list"] / medians["import torch"]
    for name, values in times.items():
        print(f"{name:<13} median {medians[name]:.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
    print(f"cores {os.cpu_count()}, load average {load:.1f} -> {os.getloadavg()[0]:.1f}")
    print(
        f"| {torch.__version__} | {medians['import torch']:.2f} s | {medians['ratt list']:.2f} s "
        f"| {ratio:.2f}x | {args.repeats} |"
    )
    print(f"ratio {ratio:.2f} ({'within' if ratio <= args.limit else 'OVER'} the {args.limit}x limit)")
    return 0 if ratio <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
