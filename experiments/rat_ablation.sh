#!/usr/bin/env bash
# The digits ablation of issue 16: which part of RAT does what, 5 seeds per variant, paired by
# seed with TRADES, on the protocol of docs/results (digits, smallcnn, eps 0.2, 50 epochs, one
# thread, deterministic; clean, PGD-20, CW-20 and AutoAttack on all 360 test points; Hessian
# and weight-noise flatness).
#
#   bash experiments/rat_ablation.sh                 # every variant, in order; resumable
#   VARIANTS="alpha-0.05 taylor-none" bash experiments/rat_ablation.sh
#
# Each variant is one `ratt sweep` into runs/ablation/VARIANT (re-running skips finished cells
# and resumes interrupted ones); experiments/collect_results.py copies finished cells' JSON
# into docs/results/ablation/ so they can be committed as they land.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
ROOT=${ROOT:-runs/ablation}
SEEDS=${SEEDS:-0,1,2,3,4}
EVAL="--attacks clean,pgd20,cw20,aa"
LANDSCAPE="--what hessian,noise --sigmas 0,0.05,0.1,0.2,0.3"
COMMON="threads=1 deterministic=true"

# name | methods | overrides (RAT's defaults: alpha 0.2, sigma_w 1e-4, c = 1 - 2/C = 0.8)
read -r -d '' TABLE <<'EOF' || true
base|trades,rat_trades|
sigma-0|rat_trades|sigma_w=0
sigma-1e-3|rat_trades|sigma_w=1e-3
sigma-1e-2|rat_trades|sigma_w=1e-2
sigma-relative-0.01|rat_trades|sigma_w=0.01 sigma_relative=true
alpha-0.05|rat_trades|alpha=0.05
alpha-0.1|rat_trades|alpha=0.1
alpha-0.4|rat_trades|alpha=0.4
taylor-first|rat_trades|taylor=first
taylor-second|rat_trades|taylor=second
taylor-none|rat_trades|taylor=none
c-0.5|rat_trades|soft_c=0.5
c-0.9|rat_trades|soft_c=0.9
noise-uniform|rat_trades|noise=uniform
noise-laplace|rat_trades|noise=laplace
sigma-target-0.05|rat_trades|sigma_target=0.05
trades-label-smoothing|trades|label_smoothing=0.178
trades-ema|trades|optim.ema_decay=0.99
rat-mc-0.01|rat_mc|mc_sigma=0.01
rat-mc-0.05|rat_mc|mc_sigma=0.05
EOF
# trades-label-smoothing: RAT's combined target puts (1 - alpha) + alpha (1 - c) = 0.84 on the
# true class; label smoothing s puts 1 - s + s/C there, so s = 0.16 C / (C - 1) = 0.178.

wanted=${VARIANTS:-$(echo "$TABLE" | cut -d'|' -f1 | tr '\n' ' ')}
for variant in $wanted; do
  line=$(echo "$TABLE" | grep "^${variant}|") || { echo "unknown variant $variant" >&2; exit 2; }
  methods=$(echo "$line" | cut -d'|' -f2)
  overrides=$(echo "$line" | cut -d'|' -f3)
  echo "== $variant: $methods $overrides" >&2
  # shellcheck disable=SC2086
  ratt sweep --out "$ROOT/$variant" --datasets digits --methods "$methods" --seeds "$SEEDS" --quiet \
    --eval "$EVAL" --landscape "$LANDSCAPE" $COMMON $overrides
  python experiments/collect_results.py "$ROOT" docs/results/ablation
done
