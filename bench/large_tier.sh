#!/usr/bin/env bash
# The decision benchmark's large-data tier (bench/scenarios-large-{fit,eval}.yaml), both halves, resumable: a
# finished scenario is saved at once and left out when the script runs again. On a GPU machine the strategies
# train on CUDA (train.device: auto); on this project's 2-core CPU a half takes many hours.
#   bench/large_tier.sh                      # both halves, every scenario
#   bench/large_tier.sh --only sst2-same-2k  # one scenario (the arguments go to bench.decision)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
for half in fit eval; do
  "$PYTHON" -m bench.decision --scenarios "bench/scenarios-large-$half.yaml" --out "bench/results/large-$half" \
    --resume "$@"
done
