"""How well do RAT's Taylor terms track the randomized objective they stand for?

    python experiments/approximation.py RUN_DIR [RUN_DIR ...]

Each RUN_DIR is a ``rat_trades`` run trained with ``method.approx_every=N``: its
``metrics.jsonl`` rows hold ``approx`` pairs ``[first, second, mc]`` (the Taylor terms of a
batch and a Monte-Carlo estimate of E_u[L(w+u)] - L(w) on it; see
``ratt.methods.approximation``). Prints, per run and pooled, the Pearson and Spearman
correlations over training of ``mc`` with ``first + second / 2`` (the terms as RAT weighs them)
and with ``second`` alone (the quadratic term the expected rise is made of), the correlation
within epochs (each epoch's mean taken out of both, so a common drift over training does not
count), and the mean size of both; writes them as JSON with ``--json FILE``. Pool runs of one
noise scale only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ratt.core.stats import mid_ranks


def pearson(a: list[float], b: list[float]) -> float:
    """Pearson's r (NaN for fewer than 3 pairs or a constant series)."""
    n = len(a)
    if n < 3:
        return math.nan
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    va, vb = sum((x - ma) ** 2 for x in a), sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else math.nan


def _within(groups: list[list[list[float]]]) -> tuple[list[float], list[float]]:
    """Taylor terms and rise with each epoch's mean taken out (what is left once the common
    drift over training is removed: do they follow each other batch by batch?)."""
    taylor, mc = [], []
    for pairs in groups:
        if len(pairs) < 2:
            continue
        t = [first + second / 2 for first, second, _ in pairs]
        m = [rise for _, _, rise in pairs]
        taylor += [v - sum(t) / len(t) for v in t]
        mc += [v - sum(m) / len(m) for v in m]
    return taylor, mc


def correlations(groups: list[list[list[float]]]) -> dict[str, float]:
    """Correlations of the Monte-Carlo rise with the weighted Taylor terms and with the second,
    over training and within epochs, and the sizes of both. ``groups``: the pairs of each epoch."""
    pairs = [pair for group in groups for pair in group]
    taylor = [first + second / 2 for first, second, _ in pairs]
    second = [s for _, s, _ in pairs]
    mc = [m for _, _, m in pairs]
    return {
        "pairs": len(pairs),
        "pearson_taylor": pearson(taylor, mc),
        "spearman_taylor": pearson(mid_ranks(taylor), mid_ranks(mc)),
        "pearson_second": pearson(second, mc),
        "spearman_second": pearson(mid_ranks(second), mid_ranks(mc)),
        "pearson_taylor_within_epoch": pearson(*_within(groups)),
        "taylor_mean": sum(taylor) / len(taylor),
        "mc_mean": sum(mc) / len(mc),
        "mc_negative_fraction": sum(m < 0 for m in mc) / len(mc),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    out, pooled = {}, []
    for run in args.runs:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        groups = [row["approx"] for row in rows if row.get("approx")]
        if not groups:
            print(f"{run}: no approx pairs (train with method.approx_every=N)", file=sys.stderr)
            continue
        out[str(run)] = correlations(groups)
        pooled += groups
    if pooled:
        out["pooled"] = correlations(pooled)
    for name, row in out.items():
        cells = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
        print(f"{name}: {cells}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0 if out else 1


if __name__ == "__main__":
    sys.exit(main())
