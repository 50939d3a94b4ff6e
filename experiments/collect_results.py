"""Copy the results of finished study cells into the repository, so they can be committed as
they land (a machine can be replaced; what is not committed is lost).

    python experiments/collect_results.py runs/ablation docs/results/ablation

For every run directory under SRC that is finished (``summary.json``) it copies the small
files that hold its numbers — ``config.yaml``, ``versions.json``, ``metrics.jsonl``,
``summary.json``, ``eval.json``, ``landscape.json`` — to the same relative path under DST
(weights and partial results stay behind). ``ratt report`` reads DST like run directories.
Prints how many cells were copied; files already identical are left untouched.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

KEEP = ("config.yaml", "versions.json", "metrics.jsonl", "summary.json", "eval.json", "landscape.json")


def collect(source: Path, target: Path) -> int:
    """Copy every finished cell's result files; returns how many cells changed."""
    changed = 0
    for summary in sorted(source.rglob("summary.json")):
        run = summary.parent
        destination = target / run.relative_to(source)
        touched = False
        for name in KEEP:
            src = run / name
            dst = destination / name
            fresh = not dst.exists() or dst.read_bytes() != src.read_bytes()
            if src.is_file() and not src.is_symlink() and fresh:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                touched = True
        changed += touched
    return changed


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    if not args.source.is_dir():
        print(f"{args.source} is not a directory", file=sys.stderr)
        return 2
    print(f"{collect(args.source, args.target)} cells copied into {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
