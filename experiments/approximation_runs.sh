#!/usr/bin/env bash
# One rat_trades run per seed with the approximation probe on (issue 16): its Taylor terms beside
# a Monte-Carlo estimate of E_u[L(w+u)] - L(w) every 10 steps, at the authors' sigma_w = 1e-4 and
# at 1e-2. The probe does not change training, so these runs equal the ablation's rat_trades
# cells; then: python experiments/approximation.py runs/approximation/*/digits/rat_trades/seed-*
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
ROOT=${ROOT:-runs/approximation}
for sigma in 1e-4 1e-2; do
  ratt sweep --out "$ROOT/sigma-$sigma" --datasets digits --methods rat_trades --seeds 0,1,2,3,4 --quiet \
    threads=1 deterministic=true approx_every=10 approx_samples=4 sigma_w=$sigma
done
python experiments/collect_results.py "$ROOT" docs/results/approximation
for sigma in 1e-4 1e-2; do  # one pooled correlation per noise scale, never across them
  python experiments/approximation.py "$ROOT/sigma-$sigma"/digits/rat_trades/seed-* \
    --json "docs/results/approximation/correlations-sigma-$sigma.json"
done
