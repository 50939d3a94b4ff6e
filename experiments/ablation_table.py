"""The digits ablation's one-table summary, from the report's JSON (issue 16).

    python experiments/ablation_table.py docs/results/ablation/report/report.json \
        --into docs/results/ablation/README.md

One row per variant, sorted by its AutoAttack difference to TRADES: what the variant changes,
AutoAttack accuracy, the paired difference to TRADES (mean ± std over seeds, seeds ahead/behind,
the paired t-test's p), the smallest difference those seeds can detect, the clean difference, and
the flatness of the adversarial loss (top Hessian eigenvalue, trace) beside the clean loss. With
``--into FILE`` the table replaces what stands between ``<!-- ablation-table -->`` and
``<!-- /ablation-table -->`` in FILE; without it, it is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

REFERENCE = "base / trades"
WHAT = {  # variant folder -> what it changes (RAT's defaults: alpha 0.2, sigma_w 1e-4, c 0.8)
    "base": "the defaults",
    "sigma-0": "no weight noise while crafting (Taylor terms only)",
    "sigma-1e-3": "σ_w = 1e-3",
    "sigma-1e-2": "σ_w = 1e-2",
    "sigma-relative-0.01": "σ relative to each tensor's RMS, 0.01",
    "alpha-0.05": "α = 0.05",
    "alpha-0.1": "α = 0.1",
    "alpha-0.4": "α = 0.4",
    "taylor-first": "first-order term only",
    "taylor-second": "second-order term only",
    "taylor-none": "no Taylor terms (TRADES crafted on noisy weights)",
    "c-0.5": "soft labels c = 0.5",
    "c-0.9": "soft labels c = 0.9",
    "noise-uniform": "uniform noise, same std",
    "noise-laplace": "Laplace noise, same std",
    "sigma-target-0.05": "adaptive σ: 5 % loss rise",
    "trades-label-smoothing": "TRADES + label smoothing 0.178",
    "trades-ema": "TRADES + EMA 0.99",
    "rat-mc-0.01": "exact randomized objective, σ = 0.01 relative",
    "rat-mc-0.05": "exact randomized objective, σ = 0.05 relative",
}


def _pm(pair: list[float] | None, scale: float = 100.0, digits: int = 1) -> str:
    if not pair or pair[0] is None or math.isnan(pair[0]):
        return "–"
    mean, std = pair
    spread = f" ± {scale * std:.{digits}f}" if std is not None and math.isfinite(std) else ""
    return f"{scale * mean:.{digits}f}{spread}"


def table(report: dict) -> str:
    groups = {g["group"]: g for g in report["groups"]}
    paired = {p["group"]: p for p in report.get("paired", [])}
    rows = []
    for name, group in groups.items():
        variant, _, method = name.partition(" / ")
        pair = paired.get(name, {})
        aa = pair.get("aa")
        clean = pair.get("clean")
        flat = group.get("flatness", {})
        if aa:
            p = f", p={aa['t_p']:.2g}" if aa.get("t_p") is not None and math.isfinite(aa["t_p"]) else ""
            delta = f"{100 * aa['mean']:+.1f} ± {100 * aa['std']:.1f} ({aa['ahead']}↑ {aa['behind']}↓{p})"
            detectable = f"{100 * aa['detectable']:.1f}" if math.isfinite(aa["detectable"]) else "–"
            order = aa["mean"]
        else:
            delta, detectable, order = (
                ("reference", "–", math.inf) if name == REFERENCE else ("–", "–", -math.inf)
            )
        delta_clean = f"{100 * clean['mean']:+.1f}" if clean else "–"
        rows.append((order, [
            variant, method, WHAT.get(variant, ""), str(group["runs"]), _pm(group.get("aa")), delta,
            detectable, delta_clean, _pm(flat.get("adv_hessian_top"), 1, 2),
            _pm(flat.get("adv_hessian_trace"), 1, 0), _pm(flat.get("clean_loss"), 1, 2),
        ]))  # fmt: skip
    rows.sort(key=lambda r: -r[0])
    header = [
        "variant", "method", "what it changes", "seeds", "AutoAttack (%)", "Δ AutoAttack vs TRADES (points)",
        "detectable (points)", "Δ clean (points)", "adv. Hessian top", "adv. Hessian trace", "clean loss",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for _, cells in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "report", type=Path, help="report.json of `ratt report --paired-with 'base / trades'`"
    )
    parser.add_argument("--into", type=Path, help="Markdown file whose marked table to replace")
    args = parser.parse_args()
    text = table(json.loads(args.report.read_text()))
    if args.into is None:
        print(text)
        return 0
    document = args.into.read_text()
    pattern = re.compile(r"(<!-- ablation-table -->\n)(?:.*?\n)?(<!-- /ablation-table -->)", re.S)
    if not pattern.search(document):
        print(
            f"{args.into} has no <!-- ablation-table --> ... <!-- /ablation-table --> markers",
            file=sys.stderr,
        )
        return 2
    args.into.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), document))
    print(f"wrote the table into {args.into}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
