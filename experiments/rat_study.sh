#!/usr/bin/env bash
# The multi-seed study behind docs/results/ ("Does RAT help?"): train, evaluate (clean, PGD-20,
# CW-20, AutoAttack), measure flatness (Hessian, weight noise) and report, on a 2-core CPU.
# Every stage skips what is finished and resumes what was interrupted, so re-running this script
# (or one of its lines) continues where it stopped. Runs go to runs/study/DATASET/METHOD/seed-N.
#
#   bash experiments/rat_study.sh            # everything (about 4 CPU-hours on 2 cores)
#   STAGE=digits bash experiments/rat_study.sh    # one part: digits, fashion-mnist or report
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1  # the numbers are bit-identical for a fixed thread count (run.threads=1)
stage=${STAGE:-all}

if [[ $stage == all || $stage == digits ]]; then
  # The laptop default (smallcnn, eps 0.2, 50 epochs), 8 methods x 5 seeds.
  ratt sweep --out runs/study --datasets digits --seeds 0,1,2,3,4 --quiet \
    --methods natural,pgd_at,trades,rat_trades,awp+trades,awp+rat_trades,mart,rat_mart \
    --eval "--attacks clean,pgd20,cw20,aa" \
    --landscape "--what hessian,noise --sigmas 0,0.05,0.1,0.2,0.3" \
    threads=1 deterministic=true
fi

if [[ $stage == all || $stage == fashion-mnist ]]; then
  # Real data (Debian's dataset-fashion-mnist), eps 0.1, the budget in configs/study/fashion-mnist.yaml.
  # AutoAttack on 28x28 costs minutes per 100 points on one core: evaluation uses the first 100
  # test images (the training summary also has the clean accuracy on all 10,000).
  ratt sweep --out runs/study --datasets fashion-mnist --seeds 0,1 --quiet \
    --config configs/study/fashion-mnist.yaml \
    --methods trades,rat_trades,awp+trades,awp+rat_trades \
    --eval "--attacks clean,pgd20,cw20,aa --n 100" \
    --landscape "--what noise --sigmas 0,0.05,0.1,0.2,0.3 --n 200" \
    test_attacks=clean
fi

if [[ $stage == all || $stage == report ]]; then
  ratt report runs/study/digits/{natural,pgd_at,trades,rat_trades,awp_trades,awp_rat_trades,mart,rat_mart}/seed-* \
    runs/study/fashion-mnist/{trades,rat_trades,awp_trades,awp_rat_trades}/seed-* \
    --group-by dataset,method --out docs/results --title "Does RAT help? digits and Fashion-MNIST"
  # the TRADES family alone, for figures whose scale the natural model does not set
  ratt report runs/study/digits/{trades,rat_trades,awp_trades,awp_rat_trades}/seed-* \
    --group-by dataset,method --out docs/results/trades-family --title "digits: TRADES with and without RAT"
fi
