#!/usr/bin/env bash
# The digits ablation's report (issue 16) from the committed cells in docs/results/ablation:
# every variant against TRADES paired by seed (mean ± std, sign test, paired t-test, smallest
# detectable difference), flatness, and accuracy against sigma_w and alpha.
#
#   bash experiments/ablation_report.sh            # after experiments/collect_results.py
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${ROOT:-docs/results/ablation}
ratt report "$ROOT"/*/digits/*/seed-* --group-by sweep,method --paired-with "base / trades" \
  --out "$ROOT/report" --title "RAT ablation on digits (5 seeds, paired with TRADES)"
sensitivity() {  # KEY OUT VARIANT...
  local key=$1 out=$2
  shift 2
  local cells=()
  for variant in "$@"; do
    [ -d "$ROOT/$variant/digits/rat_trades" ] && cells+=("$ROOT/$variant"/digits/rat_trades/seed-*)
  done
  [ ${#cells[@]} -gt 0 ] && ratt report "${cells[@]}" --group-by "$key" --out "$ROOT/$out" \
    --title "rat_trades on digits: accuracy against $key"
}
sensitivity method.sigma_w sensitivity-sigma base sigma-0 sigma-1e-3 sigma-1e-2
sensitivity method.alpha sensitivity-alpha base alpha-0.05 alpha-0.1 alpha-0.4
python experiments/ablation_table.py "$ROOT/report/report.json" --into "$ROOT/README.md"
