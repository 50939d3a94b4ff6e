#!/usr/bin/env bash
# The powered Fashion-MNIST study of issue 16: 3 seeds x {trades, rat_trades, awp+trades,
# awp+rat_trades}, then the digits ablation's best variant (BEST_NAME, BEST_METHODS,
# BEST_OVERRIDES; empty BEST_NAME skips it) into ROOT-BEST_NAME, 10 epochs on all 59,000
# training images (configs/study/fashion-mnist-powered.yaml).
# Clean, PGD-20 and CW-20 on all 10,000 test points come from training's final test
# (summary.json); clean, PGD-20, CW-20 and standard AutoAttack on the first 1,000 test points
# from `ratt eval` (eval.json). Resumable: re-run the same command.
# Two cores, two lanes (the run directory is not part of a run's config, so ROOT may differ):
#   METHODS=trades,rat_trades bash experiments/fashion_mnist_study.sh &
#   ROOT=runs/fashion-mnist-awp METHODS=awp+trades,awp+rat_trades BEST_NAME= NATURAL_SEEDS= \
#     bash experiments/fashion_mnist_study.sh &
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
ROOT=${ROOT:-runs/fashion-mnist}
SEEDS=${SEEDS:-0,1,2}
METHODS=${METHODS:-trades,rat_trades,awp+trades,awp+rat_trades}
# natural training on the same budget: the clean accuracy this model reaches without an attack
# (NATURAL_SEEDS= skips it)
NATURAL_SEEDS=${NATURAL_SEEDS-0}
if [ -n "$NATURAL_SEEDS" ]; then
  ratt sweep --out "$ROOT-natural" --datasets fashion-mnist --methods natural --seeds "$NATURAL_SEEDS" \
    --quiet --config configs/study/fashion-mnist-powered.yaml \
    --eval "--attacks clean,pgd20,cw20,aa --n 1000"
  python experiments/collect_results.py "$ROOT-natural" docs/results/fashion-mnist-powered-natural
fi
# seed by seed, so every finished seed gives a paired comparison (a sweep runs method-major)
for seed in ${SEEDS//,/ }; do
  ratt sweep --out "$ROOT" --datasets fashion-mnist --methods "$METHODS" --seeds "$seed" --quiet \
    --config configs/study/fashion-mnist-powered.yaml \
    --eval "--attacks clean,pgd20,cw20,aa --n 1000"
  python experiments/collect_results.py "$ROOT" docs/results/fashion-mnist-powered
done
# default best variant: rat_trades taylor=none, the highest paired AutoAttack difference to TRADES in
# docs/results/ablation (+0.6 ± 0.8 points; no variant beats TRADES detectably there)
BEST_NAME=${BEST_NAME-taylor-none}
BEST_METHODS=${BEST_METHODS:-rat_trades}
BEST_OVERRIDES=${BEST_OVERRIDES-taylor=none}
if [ -n "$BEST_NAME" ]; then
  # shellcheck disable=SC2086
  ratt sweep --out "$ROOT-$BEST_NAME" --datasets fashion-mnist --methods "$BEST_METHODS" --seeds "$SEEDS" \
    --quiet --config configs/study/fashion-mnist-powered.yaml \
    --eval "--attacks clean,pgd20,cw20,aa --n 1000" $BEST_OVERRIDES
  python experiments/collect_results.py "$ROOT-$BEST_NAME" "docs/results/fashion-mnist-powered-$BEST_NAME"
fi
