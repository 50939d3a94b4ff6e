#!/usr/bin/env bash
# The single-step study of issue 31 on real Fashion-MNIST (docs/results/fast/README.md), the
# protocol of the powered study (configs/study/fashion-mnist-fast.yaml: 10 epochs, all 59,000
# training images, 1,000 held out, clean/PGD-20/CW-20 on all 10,000 test points from the
# training's final test, AutoAttack on the first 1,000 from `ratt eval`). Resumable: re-run the
# same command. One stage per call (STAGE=...):
#   STAGE=study     3 seeds of fgsm_rs, n_fgsm, gradalign and their RAT versions (ROOT), and
#                   of pgd_at and trades with K = 10 (ROOT-multistep)
#   STAGE=search    the collapse search: fgsm and fgsm_rs at each eps of SEARCH_EPS, one seed,
#                   stopped at the first flagged collapse (run.on_co=stop), into ROOT-search-eps-E
#   STAGE=collapse  at CO_EPS (picked from the search), COLLAPSE_SEEDS of fgsm_rs and
#                   rat_fgsm_rs (ROOT-collapse) and of RAT's noise alone (rat_fgsm_rs taylor=none,
#                   ROOT-collapse-taylor-none), seed by seed, stopped at the first flagged
#                   collapse (CO_POLICY=stop, the default) or trained through (CO_POLICY=continue)
#   STAGE=report    the reports under docs/results/fast/
# ROOT (runs), OUT (where results are collected), SEEDS, METHODS, MULTISTEP, EVAL, EXTRA: see below.
# Two lanes share two cores, e.g. the single-step methods in one and the multi-step baselines
# in the other (METHODS= or MULTISTEP= leaves that part out):
#   STAGE=study METHODS=fgsm_rs,rat_fgsm_rs,n_fgsm,rat_n_fgsm,gradalign,rat_gradalign MULTISTEP= \
#     bash experiments/fast_study.sh &
#   STAGE=study METHODS= MULTISTEP=trades,pgd_at bash experiments/fast_study.sh &
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
ROOT=${ROOT:-runs/fast}
CONFIG=configs/study/fashion-mnist-fast.yaml
OUT=${OUT:-docs/results/fast}
SEEDS=${SEEDS:-0,1,2}
METHODS=${METHODS-fgsm_rs,n_fgsm,gradalign,rat_fgsm_rs,rat_n_fgsm,rat_gradalign}  # METHODS= : none
MULTISTEP=${MULTISTEP-pgd_at,trades}
SEARCH_EPS=${SEARCH_EPS:-0.1 0.15 0.2 0.25 0.3}
COLLAPSE_SEEDS=${COLLAPSE_SEEDS:-0,1,2,3,4}
# stop: a run ends at its first flagged collapse (whether and when is the question; it saves the
# collapsed runs' remaining epochs); continue: trained through, to see whether a run recovers
CO_POLICY=${CO_POLICY:-stop}
EVAL=${EVAL:-"--attacks clean,pgd20,cw20,aa --n 1000"}
# EXTRA: overrides added to every cell (a smoke test: data.train_limit=128 optim.epochs=1 ...)
# shellcheck disable=SC2086
sweep() { ratt sweep --datasets fashion-mnist --quiet --config "$CONFIG" "$@" ${EXTRA:-}; }

case "${STAGE:?set STAGE=study|search|collapse|report}" in
study)
  for seed in ${SEEDS//,/ }; do  # seed by seed: every finished seed gives a paired comparison
    [ -z "$METHODS" ] || sweep --out "$ROOT" --methods "$METHODS" --seeds "$seed" --eval "$EVAL"
    if [ -n "$MULTISTEP" ]; then
      sweep --out "$ROOT-multistep" --methods "$MULTISTEP" --seeds "$seed" --eval "$EVAL" \
        attack.steps=10 attack.step=0.025
    fi
    [ -z "$METHODS" ] || python experiments/collect_results.py "$ROOT" "$OUT/study"
    [ -z "$MULTISTEP" ] || python experiments/collect_results.py "$ROOT-multistep" "$OUT/study-multistep"
  done ;;
search)
  for eps in $SEARCH_EPS; do
    sweep --out "$ROOT-search-eps-$eps" --methods fgsm,fgsm_rs --seeds 0 attack.eps="$eps" run.on_co=stop \
      test_attacks=clean,pgd20
    python experiments/collect_results.py "$ROOT-search-eps-$eps" "$OUT/search/eps-$eps"
  done ;;
collapse)
  : "${CO_EPS:?set CO_EPS to the eps at which the search saw fgsm_rs collapse}"
  for seed in ${COLLAPSE_SEEDS//,/ }; do  # seed by seed: each finished seed is one more count
    sweep --out "$ROOT-collapse" --methods fgsm_rs,rat_fgsm_rs --seeds "$seed" \
      attack.eps="$CO_EPS" run.on_co="$CO_POLICY" test_attacks=clean,pgd20
    sweep --out "$ROOT-collapse-taylor-none" --methods rat_fgsm_rs --seeds "$seed" \
      attack.eps="$CO_EPS" run.on_co="$CO_POLICY" test_attacks=clean,pgd20 method.taylor=none
    python experiments/collect_results.py "$ROOT-collapse" "$OUT/collapse"
    python experiments/collect_results.py "$ROOT-collapse-taylor-none" "$OUT/collapse-taylor-none"
  done ;;
report)  # from the cells committed under docs/results/fast (collect_results.py above)
  runs=("$OUT"/study/fashion-mnist/*/seed-* "$OUT"/study-multistep/fashion-mnist/*/seed-*)
  ratt report "${runs[@]}" --from summary --paired-with trades --out "$OUT/report-full-test" \
    --title "Fashion-MNIST: single-step methods with and without RAT, all 10,000 test points"
  ratt report "${runs[@]}" --from eval --paired-with trades --out "$OUT/report-autoattack" \
    --title "Fashion-MNIST: single-step methods with and without RAT, AutoAttack on the first 1,000"
  if [ -d "$OUT/collapse" ]; then  # grouped by folder: rat_fgsm_rs is in both
    ratt report "$OUT"/collapse/fashion-mnist/*/seed-* "$OUT"/collapse-taylor-none/fashion-mnist/*/seed-* \
      --from summary --group-by sweep,method --out "$OUT/report-collapse" \
      --title "Fashion-MNIST: does RAT's weight noise prevent catastrophic overfitting?"
  fi ;;
*) echo "unknown STAGE=$STAGE" >&2; exit 2 ;;
esac
