#!/usr/bin/env bash
# The powered Fashion-MNIST study's reports (issue 16), from the cells committed under
# docs/results by experiments/fashion_mnist_study.sh (and its best-variant folder beside it):
#   report-full-test/   clean, PGD-20, CW-20 on all 10,000 test points (training's final test)
#   report-autoattack/  clean, PGD-20, CW-20 and standard AutoAttack on the first 1,000 (ratt eval)
# Every group paired by seed with TRADES (paired t-test, smallest detectable difference); RAT's
# effect table pairs AWP+RAT-TRADES with AWP+TRADES.
#
#   bash experiments/fashion_mnist_report.sh      # after experiments/collect_results.py
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${ROOT:-docs/results/fashion-mnist-powered}
cells=()
for cell in "$ROOT"/fashion-mnist/*/seed-* "$ROOT"-*/fashion-mnist/*/seed-*; do
  [ -d "$cell" ] && cells+=("$cell")
done
REFERENCE="$(basename "$ROOT") / trades"
ratt report "${cells[@]}" --from summary --group-by sweep,method --paired-with "$REFERENCE" \
  --out "$ROOT/report-full-test" --title "Fashion-MNIST, 10 epochs: all 10,000 test points"
ratt report "${cells[@]}" --from eval --group-by sweep,method --paired-with "$REFERENCE" \
  --out "$ROOT/report-autoattack" --title "Fashion-MNIST, 10 epochs: AutoAttack on the first 1,000 test points"
