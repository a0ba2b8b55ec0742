# NVIDIA's Multi-Process Service for the GPU session (sourced by benchmarks/gpu_session.sh).
#
# Without MPS, processes on one GPU take turns (time slicing): two graphed runs at once took
# 6.2-6.8 s per epoch each against 3.7 s alone (README, Results).  With the MPS control
# daemon running, their kernels share the chip at once, which latency-bound runs like ours
# may turn into throughput; `rnnreg bench --share` measures whether they do.
#
#   mps_start DIR PYTHON   start the daemon (pipes and logs under DIR), check that a CUDA
#                          process runs under it; on any failure stop it, unset its variables
#                          and return 1, so that what follows runs as if MPS were never tried
#   mps_stop               stop the daemon, if mps_start started one
#
# mps_start's checks have timeouts: a client that cannot reach the server can hang.

mps_start() {
  local dir=$1 python=$2
  command -v nvidia-cuda-mps-control > /dev/null || { echo "mps: nvidia-cuda-mps-control not found"; return 1; }
  mkdir -p "$dir/pipe" "$dir/log" || return 1
  export CUDA_MPS_PIPE_DIRECTORY=$dir/pipe CUDA_MPS_LOG_DIRECTORY=$dir/log
  if timeout 30 nvidia-cuda-mps-control -d \
      && timeout 90 "$python" -c 'import torch; assert (torch.ones(1, device="cuda") + 1).item() == 2'; then
    MPS_STARTED=1
    echo "mps: on ($dir)"
    return 0
  fi
  echo "mps: the daemon or a client under it failed; going on without MPS"
  echo quit | timeout 30 nvidia-cuda-mps-control > /dev/null 2>&1
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  return 1
}

mps_stop() {
  [ "${MPS_STARTED:-0}" = 1 ] || return 0
  echo quit | timeout 30 nvidia-cuda-mps-control > /dev/null 2>&1
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY MPS_STARTED
}
