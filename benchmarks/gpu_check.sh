#!/usr/bin/env bash
# `ratt doctor --gpu --quick`, one section per process, each under its own wall limit, so a slow
# section (a long torch.compile, a hung kernel) cannot take the others' time; every section's
# JSON is rewritten after each row, so a section cut by its limit keeps the rows it finished.
# SECTIONS lists section:limit-seconds pairs; the default, the profile, epoch and AutoAttack
# rows (issue 34) before the earlier checks, fits a 10-minute device call (90+150+150+200 s);
# the bench matrix (issue 17, measured 2026-11-26) runs when named.
# Usage (repo root; ratt importable, e.g. PYTHONPATH=src):
#   OUT=gpu-check bash benchmarks/gpu_check.sh
#   SECTIONS="cuda:200 run:100 bench:240" OUT=gpu-check bash benchmarks/gpu_check.sh
#   ARGS=--dry-run OUT=/tmp/gpu-check bash benchmarks/gpu_check.sh   # the same on a CPU
set -u
OUT=${OUT:-gpu-check}
PYTHON=${PYTHON:-python3}
ARGS=${ARGS:---quick}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$OUT/nvidia-smi.csv" 2>&1
status=0
for spec in ${SECTIONS:-profile:90 epoch:150 aa:150 cuda:200}; do
  section=${spec%%:*}
  limit=${spec##*:}
  echo "== $section (limit ${limit} s) $(date -u +%T)"
  timeout --signal=TERM --kill-after=10 "$limit" \
    "$PYTHON" -m ratt doctor --gpu $ARGS --only "$section" --out "$OUT/$section.json" || status=1
done
echo "== done $(date -u +%T), exit $status"
exit $status
