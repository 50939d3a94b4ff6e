"""The collapse stage of the single-step study (issue 31): does RAT's weight noise prevent
catastrophic overfitting? Reads the committed runs under ``docs/results/fast/`` and prints one
Markdown page: per arm, how many seeds collapsed and when (the guard as it is now,
:func:`ratt.eval.overfitting.collapse_epoch`, on each run's validation history), exact tests
between arms, and the best checkpoint's test PGD-20 paired by seed.

    python experiments/collapse_table.py > docs/results/fast/report-collapse/collapse.md

Tests used (exact, small samples; two-sided):
- how many collapsed: Fisher's exact test on the 2x2 table (collapsed / not, arm A / arm B);
- when: an exact permutation test of the difference in mean rank of the collapse epoch, a run
  that never collapsed ranked after every epoch (censored at the end of training);
- test PGD-20 of the best checkpoint: the paired t-test over seeds
  and the sign test (:func:`ratt.core.stats.paired_summary`).
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import yaml

from ratt.core.stats import mid_ranks, paired_summary
from ratt.eval.overfitting import collapse_epoch, history_of

ROOT = Path(__file__).resolve().parents[1] / "docs" / "results" / "fast"
ARMS = {  # label -> folder of seeds
    "fgsm_rs": "collapse/fashion-mnist/fgsm_rs",
    "rat_fgsm_rs (Taylor terms + weight noise)": "collapse/fashion-mnist/rat_fgsm_rs",
    "rat_fgsm_rs taylor=none (weight noise alone)": "collapse-taylor-none/fashion-mnist/rat_fgsm_rs",
}
NEVER = math.inf  # the collapse epoch of a run that did not collapse


def read_arm(folder: Path) -> dict[int, dict]:
    """seed -> {epoch (of the collapse, inf: none), epochs (trained), pgd20, clean, rule}."""
    runs = {}
    for seed_dir in sorted(folder.glob("seed-*")):
        rows = [json.loads(line) for line in (seed_dir / "metrics.jsonl").read_text().splitlines() if line]
        config = yaml.safe_load((seed_dir / "config.yaml").read_text())
        summary = json.loads((seed_dir / "summary.json").read_text())
        found = collapse_epoch(history_of(rows), float(config["run"]["co_drop"]))
        runs[int(seed_dir.name.split("-")[1])] = {
            "epoch": NEVER if found is None else found.epoch,
            "rule": None if found is None else found.rule,
            "epochs": max(int(r["epoch"]) for r in rows),
            "recorded": summary.get("catastrophic_overfitting"),
            "pgd20": summary["test"]["accuracy"]["pgd20"],
            "clean": summary["test"]["accuracy"]["clean"],
        }
    return runs


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p of Fisher's exact test for the table [[a, b], [c, d]]: the probability,
    margins fixed, of a table no more likely than the one seen."""
    row, col, n = a + b, a + c, a + b + c + d

    def prob(x: int) -> float:
        return math.comb(col, x) * math.comb(n - col, row - x) / math.comb(n, row)

    seen = prob(a)
    low, high = max(0, row + col - n), min(row, col)
    return min(1.0, sum(prob(x) for x in range(low, high + 1) if prob(x) <= seen * (1 + 1e-9)))


def rank_permutation_test(first: list[float], second: list[float]) -> float:
    """Two-sided exact p that the two samples' mean ranks differ as much as seen, over every
    split of the pooled ranks into groups of these sizes."""
    pooled = mid_ranks(first + second)
    n = len(first)

    def gap(group: tuple[int, ...]) -> float:
        inside = sum(pooled[i] for i in group)
        return abs(inside / n - (sum(pooled) - inside) / (len(pooled) - n))

    seen = gap(tuple(range(n)))
    splits = list(itertools.combinations(range(len(pooled)), n))
    return sum(gap(s) >= seen - 1e-12 for s in splits) / len(splits)


def _epochs(runs: dict[int, dict]) -> str:
    return ", ".join("-" if r["epoch"] == NEVER else str(r["epoch"]) for r in runs.values())


def arm_table(arms: dict[str, dict[int, dict]]) -> list[str]:
    lines = [
        "| arm | seeds | collapsed | epoch of the collapse, by seed | flagged when trained | "
        "test clean % | test PGD-20 % |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, runs in arms.items():
        collapsed = sum(r["epoch"] != NEVER for r in runs.values())
        recorded = ", ".join("-" if r["recorded"] is None else str(r["recorded"]) for r in runs.values())
        clean = [100 * r["clean"] for r in runs.values()]
        pgd = [100 * r["pgd20"] for r in runs.values()]
        lines.append(
            f"| {label} | {len(runs)} | {collapsed}/{len(runs)} | {_epochs(runs)} | {recorded} | "
            f"{_mean_sd(clean)} | {_mean_sd(pgd)} |"
        )
    return lines


def _mean_sd(values: list[float]) -> str:
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {sd:.1f}"


def comparison_table(arms: dict[str, dict[int, dict]]) -> list[str]:
    lines = [
        "| arm | against | collapsed (Fisher p) | when (rank test p) | test PGD-20 difference, "
        "paired by seed (p) |",
        "| --- | --- | --- | --- | --- |",
    ]
    labels = list(arms)
    pairs = [(labels[1], labels[0]), (labels[2], labels[0]), (labels[1], labels[2])]
    for label, base_label in pairs:
        runs, base = arms[label], arms[base_label]
        seeds = sorted(set(base) & set(runs))
        hit = sum(runs[s]["epoch"] != NEVER for s in seeds)
        hit_base = sum(base[s]["epoch"] != NEVER for s in seeds)
        fisher = fisher_exact(hit, len(seeds) - hit, hit_base, len(seeds) - hit_base)
        when = rank_permutation_test([runs[s]["epoch"] for s in seeds], [base[s]["epoch"] for s in seeds])
        paired = paired_summary([100 * (runs[s]["pgd20"] - base[s]["pgd20"]) for s in seeds])
        lines.append(
            f"| {label} | {base_label} | {hit}/{len(seeds)} vs {hit_base}/{len(seeds)} (p = {fisher:.3g}) | "
            f"p = {when:.3g} | {paired['mean']:+.1f} ± {paired['std']:.1f} points (t-test p = "
            f"{paired['t_p']:.3g}; sign test {paired['ahead']} up, {paired['behind']} down, "
            f"p = {paired['p']:.3g}) |"
        )
    return lines


def main() -> None:
    arms = {label: read_arm(ROOT / folder) for label, folder in ARMS.items()}
    out = [
        "# Does RAT's weight noise prevent catastrophic overfitting? (Fashion-MNIST, eps 0.2)",
        "",
        "Made by `python experiments/collapse_table.py` from the runs under `docs/results/fast/collapse*/` "
        "(the collapse stage of `experiments/fast_study.sh`: SmallCNN, 10 epochs, FGSM-RS step 1.25 eps, "
        "run.on_co=stop, so most collapsed runs stopped at the epoch the guard of the time flagged). "
        "'epoch of the collapse': the first validation at which the guard as it is now "
        "(`ratt.eval.overfitting`, run.co_drop = 20: a 20-point fall of PGD accuracy from its best "
        "with FGSM not falling, or FGSM accuracy 20 points above PGD accuracy) fires; '-': never "
        "within the epochs trained. 'flagged when trained': what the guard of the time recorded "
        "(the fall rule alone). Test accuracies: the best checkpoint (validation PGD-10), all "
        "10,000 test points, mean ± sample std over seeds.",
        "",
        *arm_table(arms),
        "",
        "Each RAT arm against fgsm_rs, and RAT against its weight noise alone (the Taylor terms' "
        "share), seed by seed (exact two-sided tests; a run that never collapsed ranks after every "
        "epoch):",
        "",
        *comparison_table(arms),
        "",
    ]
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
