"""Compare a re-run of one study cell with the numbers committed in docs/results/report.json.

    python experiments/check_row.py RUN_DIR [--report docs/results/report.json]

RUN_DIR is a fresh run of one (dataset, method, seed) made with the commands in
docs/results/REPRODUCE.md (train, then `ratt eval`, optionally `ratt landscape`). Prints each
number side by side and exits 1 if any differs by more than --tol (default 0: bit-identical,
which is what CPU runs with one thread and run.deterministic=true give).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ratt.report import load_run


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="the re-run's directory")
    parser.add_argument("--report", default="docs/results/report.json")
    parser.add_argument("--tol", type=float, default=0.0, help="largest accepted absolute difference")
    args = parser.parse_args()
    rerun = load_run(args.run)
    saved = json.loads(Path(args.report).read_text())
    cell = (rerun.dataset, rerun.method, rerun.seed)
    matches = [r for r in saved["runs"] if (r["dataset"], r["method"], r["seed"]) == cell]
    if not matches:
        print(f"no {rerun.dataset} / {rerun.method} / seed {rerun.seed} in {args.report}", file=sys.stderr)
        return 2
    committed = matches[0]
    pairs = {f"accuracy.{k}": (v, rerun.accuracy.get(k)) for k, v in committed["accuracy"].items()}
    if rerun.flatness:
        pairs.update({f"flatness.{k}": (v, rerun.flatness.get(k)) for k, v in committed["flatness"].items()})
    worst = 0.0
    print(f"{rerun.dataset} / {rerun.method} / seed {rerun.seed}: committed vs re-run")
    for name, (old, new) in pairs.items():
        diff = abs(old - new) if new is not None else float("inf")
        worst = max(worst, diff)
        print(f"  {name:32s} {old:.6f}  {'missing' if new is None else f'{new:.6f}'}  diff {diff:.2g}")
    print("same" if worst <= args.tol else f"DIFFERENT (largest difference {worst:.3g})")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
