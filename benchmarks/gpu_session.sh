#!/usr/bin/env bash
# One prepared command for a session that is lent a GPU (the device tool runs it in the repo
# root and returns what is written under $OUT; 10 minutes per command, 15 per session).
# torch alone is enough there: the trainer needs torch, safetensors and tqdm, all in its image.
#
#   OUT=/some/dir BUDGET=540 RNNREG_GIT_COMMIT=$(git rev-parse HEAD) bash benchmarks/gpu_session.sh [all|check]
#   (check: steps 1 and 2 only, ~2 minutes)
#
#   (BENCH=0 skips step 2, GPU_TESTS=0 step 1: for a long run such as large that needs the time)
#   1. the GPU tests (tests/test_gpu.py: graph replay == eager step, masks under replay, ...),
#      unless GPU_TESTS=0 (when the training code is unchanged since they last passed)
#   2. the bench at medium size, eager and CUDA-graph steps, with a profile of each step
#      (rnnreg bench --profile: device-busy time by kind of work; issue 5)
#   3. reference runs in priority order, one at a time (graphed runs sharing a GPU slow each
#      other down more than they gain), each started only if its estimate ends before the
#      budget (benchmarks/gpu_runs.py); MC-dropout evaluation of the variational run; eager
#      steps if the graph tests failed (issue 6)
#   4. finished runs packed into one archive with one checkpoint, the first small model's,
#      compacted to float16 (the tool returns at most 8 files of at most 16 MB)
set -uo pipefail
OUT=${OUT:?set OUT to a folder for the results}
BUDGET=${BUDGET:-540}  # seconds this script may take in all
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
began=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - began) )); }
stamp=$(date -u +%Y-%m-%d)
device=$($PY -c 'import torch; print(torch.cuda.get_device_name().replace(" ", "-"))')
{ nvidia-smi; git rev-parse HEAD; echo "RNNREG_GIT_COMMIT=${RNNREG_GIT_COMMIT:-}"; $PY -c 'import torch, sys; print(sys.version); print(torch.__version__, torch.backends.cudnn.version())'; } \
  > "$OUT/env.txt" 2>&1

# 1. GPU tests; the graph ones decide which step the runs use.
step=graph
if [ "${GPU_TESTS:-1}" != 0 ]; then
  timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_steps.py tests/test_fused_cell.py \
    > "$OUT/gpu-tests.log" 2>&1
  tests_rc=$?
  # (The resume-exactness test does not decide: an uninterrupted run does not need it.)
  if grep -E "FAILED.*(test_graph_replay_matches|test_a_graphed_run|under_graph_replay)" "$OUT/gpu-tests.log" \
      >/dev/null || [ $tests_rc -gt 1 ]; then step=eager; fi
  echo "tests rc=$tests_rc; runs use --step $step; $(left) s left" | tee -a "$OUT/session.log"
fi

# 2. The bench and where the time goes (issue 5): medium, eager and graph, interleaved rounds.
bench="$OUT/bench-medium-$device-$stamp.json"
[ "${BENCH:-1}" = 0 ] && echo '{}' > "$bench" || timeout 150 $PY -m rnnreg bench --device cuda --preset medium --placements "${BENCH_PLACEMENTS:-zaremba,recurrent,variational}" \
  --batches 20 --rounds 3 --step both --profile --json > "$bench" 2> "$OUT/bench.err"
echo "bench rc=$?; $(left) s left" | tee -a "$OUT/session.log"
[ "${1:-all}" = check ] && exit 0

# 3. Reference runs (issue 6), most important first; the rest fill what time is left.  Done so far
#    (runs/reference/): small none x3, small zaremba/recurrent/variational/both, medium zaremba,
#    variational, recurrent.  Large (55 epochs, ~7 min alone) needs a command of its own:
#    RUNS="large-zaremba-0.65-s0:large:zaremba:0.65:0" GPU_TESTS=0 BENCH=0 BUDGET=560 bash benchmarks/gpu_session.sh
runs="$OUT/work/runs"
mkdir -p "$runs"
$PY benchmarks/gpu_runs.py --runs-dir "$runs" --deadline $(( $(left) - 25 )) --concurrent 1 --step "$step" \
  --bench benchmarks/bench-medium-NVIDIA-H200-2026-11-26.json --bench "$bench" \
  --mc medium-variational-s0=100,1000 --mc medium-variational-s1=1000 \
  ${RUNS:-medium-none-s0:medium:none:-:0 medium-both-s0:medium:both:-:0 \
    medium-zoneout-s0:medium:zoneout:-:0 medium-weight-drop-s0:medium:weight-drop:-:0 \
    medium-semeniuta-s0:medium:semeniuta:-:0 medium-moon-s0:medium:moon:-:0 \
    medium-zaremba-0.5-s1:medium:zaremba:0.5:1 medium-zaremba-0.5-s2:medium:zaremba:0.5:2 \
    small-zoneout-s0:small:zoneout:-:0 small-semeniuta-s0:small:semeniuta:-:0 \
    small-weight-drop-s0:small:weight-drop:-:0 small-moon-s0:small:moon:-:0} \
  2>&1 | tee "$OUT/runs.jsonl"

# 4. Pack the finished runs.
finished=()
for dir in "$runs"/*/; do
  name=$(basename "$dir")
  if grep -q '"state": *"finished"' "$dir/status.json" 2>/dev/null; then
    # One checkpoint ships (the poke view's model): the first small run's, in float16.
    case "$name" in
      *-small-none-s0-*) $PY -m rnnreg compact "$name" --runs-dir "$runs" > /dev/null ;;
      *) rm -f "$dir"/checkpoint.* ;;
    esac
    finished+=("$name")
  fi
done
echo "finished: ${finished[*]:-none}; $(left) s left" | tee -a "$OUT/session.log"
tar -C "$OUT/work" -czf "$OUT/reference-runs-$device-$stamp.tar.gz" --exclude='.lock' --exclude='.slots' \
  logs \
  $(for name in "${finished[@]}"; do echo "runs/$name"; done)
rm -rf "$OUT/work"
