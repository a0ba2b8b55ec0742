#!/usr/bin/env bash
# One prepared command for a session that is lent a GPU (the device tool runs it in the repo
# root and returns what is written under $OUT).  torch alone is enough there: the trainer needs
# torch, safetensors and (on a terminal) tqdm; the GPU image has all three.
#
#   bash benchmarks/gpu_session.sh check   # ~2 min: GPU tests + bench (issue 5), JSON to $OUT
#   bash benchmarks/gpu_session.sh table1  # ~6 min: small (13 ep) + medium zaremba (39 ep) concurrently (issue 6)
#
# Runs are written to $OUT/runs and packed into one archive (the tool returns at most 8 files),
# checkpoints left out except the small model's, compacted to float16.
set -euo pipefail
OUT=${OUT:?set OUT to a folder for the results}
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
stamp=$(date -u +%Y-%m-%d)
device=$($PY -c 'import torch; print(torch.cuda.get_device_name().replace(" ", "-"))')

case "${1:-check}" in
  check)
    $PY -m pytest -q tests/test_gpu.py tests/test_lstm.py tests/test_dropout.py 2>&1 | tee "$OUT/gpu-tests.log"
    for preset in small medium large; do
      $PY -m rnnreg bench --device cuda --preset "$preset" --batches 30 --rounds 3 --json \
        > "$OUT/bench-$preset-$device-$stamp.json"
    done
    ;;
  table1)
    runs="$OUT/runs"
    mkdir -p "$runs"
    $PY -m rnnreg train --preset small --device cuda --runs-dir "$runs" --name small-none-s0 --seed 0 \
      > "$OUT/small.log" 2>&1 &
    $PY -m rnnreg train --preset medium --device cuda --runs-dir "$runs" --name medium-zaremba-0.5-s0 --seed 0 \
      > "$OUT/medium.log" 2>&1 &
    wait
    for run in "$runs"/*small*; do $PY -m rnnreg compact "$(basename "$run")" --runs-dir "$runs"; done
    tar -C "$runs" -czf "$OUT/reference-runs-$device-$stamp.tar.gz" \
      --exclude='*medium*/checkpoint.*' --exclude='.lock' --exclude='.slots' .
    rm -rf "$runs"
    ;;
  *)
    echo "usage: $0 check|table1" >&2
    exit 2
    ;;
esac
