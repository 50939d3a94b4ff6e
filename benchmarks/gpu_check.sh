#!/usr/bin/env bash
# `ratt doctor --gpu --quick`, one section per process, each under its own wall limit, so a slow
# section (a long torch.compile, a hung kernel) cannot take the others' time; every section's
# JSON is rewritten after each row, so a section cut by its limit keeps the rows it finished.
# Fits a 10-minute device call: CUDA_S + RUN_S + BENCH_S seconds (default 200 + 100 + 240).
# Usage (repo root; ratt importable, e.g. PYTHONPATH=src):
#   OUT=gpu-check bash benchmarks/gpu_check.sh
#   ARGS=--dry-run OUT=/tmp/gpu-check bash benchmarks/gpu_check.sh   # the same on a CPU
set -u
OUT=${OUT:-gpu-check}
PYTHON=${PYTHON:-python3}
ARGS=${ARGS:---quick}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$OUT/nvidia-smi.csv" 2>&1
status=0
for spec in "cuda:${CUDA_S:-200}" "run:${RUN_S:-100}" "bench:${BENCH_S:-240}"; do
  section=${spec%%:*}
  limit=${spec##*:}
  echo "== $section (limit ${limit} s) $(date -u +%T)"
  timeout --signal=TERM --kill-after=10 "$limit" \
    "$PYTHON" -m ratt doctor --gpu $ARGS --only "$section" --out "$OUT/$section.json" || status=1
done
echo "== done $(date -u +%T), exit $status"
exit $status
