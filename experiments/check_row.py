"""Compare a re-run of one study cell with the numbers committed in docs/results/report.json.

    python experiments/check_row.py RUN_DIR [--report docs/results/report.json] [--group NAME]

An ablation cell: `--report docs/results/ablation/report/report.json --group "taylor-none /
rat_trades"` (its report holds one cell per variant for each dataset, method and seed).

RUN_DIR is a fresh run of one (dataset, method, seed) made with the commands in
docs/results/REPRODUCE.md (train, then `ratt eval`, optionally `ratt landscape`).

What is guaranteed decides the tolerance, and the script says which case applies:

- same machine kind and software (the run's versions.json and the committed run's agree on
  CPU model, CPU capability, torch, oneDNN/MKL, thread count and ratt version): the numbers
  must be bit-identical (tolerance 0);
- otherwise (another CPU kind, another vector ISA, other libraries, or a study that did not
  record them): floating-point kernels differ, so the numbers are only expected within the
  seed-to-seed spread of the study; each number's tolerance is then 2 sample standard
  deviations of its group over seeds (from report.json).

Exits 1 if any number is outside its tolerance, 2 if the cell is not in the report.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ratt.report import load_run

# versions.json fields that must agree for bit-identical numbers
DECIDING = ("cpu", "cpu_capability", "torch", "onednn", "mkl", "threads", "ratt")


def same_machine_kind(committed: dict, rerun: dict) -> tuple[bool, str]:
    """Whether two versions.json agree on every field that decides CPU numbers, and why not."""
    missing = [k for k in DECIDING if k not in committed]
    if missing:
        return False, f"the committed run did not record {', '.join(missing)}"
    differ = [f"{k}: {committed[k]} vs {rerun.get(k)}" for k in DECIDING if committed[k] != rerun.get(k)]
    return not differ, "; ".join(differ)


def _curve_numbers(rows: list[dict]) -> dict[tuple[int, str], float]:
    """(epoch row, key) -> value of every number in metrics.jsonl but the wall times."""
    return {
        (i, key): value
        for i, row in enumerate(rows)
        for key, value in row.items()
        if isinstance(value, (int, float)) and "seconds" not in key
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="the re-run's directory")
    parser.add_argument("--report", default="docs/results/report.json")
    parser.add_argument("--group", help="the report's group of the cell, when several groups have it")
    parser.add_argument(
        "--spread", type=float, default=2.0, help="tolerance in seed-to-seed stds (other CPU)"
    )
    args = parser.parse_args()
    rerun = load_run(args.run)
    saved = json.loads(Path(args.report).read_text())
    cell = (rerun.dataset, rerun.method, rerun.seed)
    matches = [r for r in saved["runs"] if (r["dataset"], r["method"], r["seed"]) == cell]
    if args.group is not None:
        matches = [r for r in matches if r["group"] == args.group]
    if not matches:
        print(f"no {rerun.dataset} / {rerun.method} / seed {rerun.seed} in {args.report}", file=sys.stderr)
        return 2
    if len(matches) > 1:
        groups = ", ".join(repr(r["group"]) for r in matches)
        print(f"{len(matches)} groups have this cell ({groups}): choose one with --group", file=sys.stderr)
        return 2
    committed = matches[0]
    group = next(g for g in saved["groups"] if g["group"] == committed["group"])
    exact, why = same_machine_kind(committed.get("versions", {}), rerun.versions)
    if exact:
        print("same CPU kind and software as the committed run: expecting bit-identical numbers")
    else:
        print(f"different machine kind or software ({why}): expecting numbers within "
              f"{args.spread:g} seed-to-seed std of the study")  # fmt: skip

    def tolerance(key: str, section: str) -> float:
        if exact:
            return 0.0
        spread = group.get(key) if section == "accuracy" else group.get("flatness", {}).get(key)
        std = spread[1] if spread and spread[1] is not None else math.nan
        return args.spread * std if math.isfinite(std) else math.inf

    pairs = {("accuracy", k): (v, rerun.accuracy.get(k)) for k, v in committed["accuracy"].items()}
    if rerun.flatness:
        pairs.update({("flatness", k): (v, rerun.flatness.get(k)) for k, v in committed["flatness"].items()})
    bad = 0
    print(f"{rerun.dataset} / {rerun.method} / seed {rerun.seed}: committed vs re-run")
    for (section, name), (old, new) in pairs.items():
        diff = abs(old - new) if new is not None else math.inf
        limit = tolerance(name, section)
        ok = diff <= limit
        bad += not ok
        shown = "missing" if new is None else f"{new:.6f}"
        verdict = "ok" if ok else "OUT"
        print(f"  {section}.{name:28s} {old:.6f}  {shown}  diff {diff:.2g}  tol {limit:.2g}  {verdict}")
    if exact and committed.get("metrics"):  # the training curve too, when it must be bit-identical
        steps = _curve_numbers(committed["metrics"])
        rerun_steps = _curve_numbers(rerun.metrics)
        differ = sum(rerun_steps.get(key) != value for key, value in steps.items())
        bad += differ
        print(f"  metrics.jsonl: {len(steps)} per-epoch numbers (wall times left out), {differ} differ")
    print(
        "same"
        if exact and not bad
        else ("within tolerance" if not bad else f"{bad} numbers out of tolerance")
    )
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
