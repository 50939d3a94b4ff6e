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
# two views of the runs given, each paired by seed with REFERENCE: all 10,000 test points
# (training's final test) into OUT-full-test/, AutoAttack on the first 1,000 into OUT-autoattack/
two_views() {  # OUT TITLE REFERENCE RUN...
  local out=$1 title=$2 reference=$3
  shift 3
  ratt report "$@" --from summary --group-by sweep,method --paired-with "$reference" \
    --out "$out-full-test" --title "$title: all 10,000 test points"
  ratt report "$@" --from eval --group-by sweep,method --paired-with "$reference" \
    --out "$out-autoattack" --title "$title: AutoAttack on the first 1,000 test points"
}
two_views "$ROOT/report" "Fashion-MNIST, 10 epochs" "$(basename "$ROOT") / trades" "${cells[@]}"
NOISE_ONLY="$ROOT-taylor-none"
if [ -d "$NOISE_ONLY" ]; then
  two_views "$ROOT/report-taylor-terms" \
    "Fashion-MNIST, 10 epochs, RAT-TRADES vs its weight noise alone (taylor=none)" \
    "$(basename "$NOISE_ONLY") / rat_trades" \
    "$ROOT"/fashion-mnist/rat_trades/seed-* "$NOISE_ONLY"/fashion-mnist/rat_trades/seed-*
fi
