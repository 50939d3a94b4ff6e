#!/usr/bin/env bash
# The powered Fashion-MNIST study's reports (issue 16), from the cells committed under
# docs/results by experiments/fashion_mnist_study.sh (and its best-variant folder beside it):
#   report-full-test/   clean, PGD-20, CW-20 on all 10,000 test points (training's final test)
#   report-autoattack/  clean, PGD-20, CW-20 and standard AutoAttack on the first 1,000 (ratt eval)
# Every group paired by seed with TRADES (paired t-test, smallest detectable difference); RAT's
# effect table pairs AWP+RAT-TRADES with AWP+TRADES. Once the taylor=none runs exist:
#   report-taylor-terms-full-test/, report-taylor-terms-autoattack/   RAT-TRADES paired with
#   rat_trades taylor=none (its weight noise alone): what the Taylor terms add to the noise
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
NOISE_ONLY="$ROOT-taylor-none"
if [ -d "$NOISE_ONLY" ]; then
  pair=("$ROOT"/fashion-mnist/rat_trades/seed-* "$NOISE_ONLY"/fashion-mnist/rat_trades/seed-*)
  REFERENCE="$(basename "$NOISE_ONLY") / rat_trades"
  ratt report "${pair[@]}" --from summary --group-by sweep,method --paired-with "$REFERENCE" \
    --out "$ROOT/report-taylor-terms-full-test" \
    --title "Fashion-MNIST, 10 epochs: RAT-TRADES vs its weight noise alone (taylor=none), all 10,000 test points"
  ratt report "${pair[@]}" --from eval --group-by sweep,method --paired-with "$REFERENCE" \
    --out "$ROOT/report-taylor-terms-autoattack" \
    --title "Fashion-MNIST, 10 epochs: RAT-TRADES vs its weight noise alone (taylor=none), AutoAttack on the first 1,000"
fi
