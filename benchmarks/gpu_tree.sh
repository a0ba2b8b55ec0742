#!/usr/bin/env bash
# The working tree a device call sends must be under 64 MiB (tracked files, and untracked ones git
# does not ignore: /work/.library/device/README.md, Limits).  The shipped runs alone are more than
# that, and nothing on the GPU path reads them, so a call goes from a branch without them.
#
#   bash benchmarks/gpu_tree.sh check     what would travel now, in MiB (exit 1 if over the limit)
#   bash benchmarks/gpu_tree.sh slim      commit a branch gpu-call without runs/reference, check it
#   bash benchmarks/gpu_tree.sh restore   back to the branch slim started from; gpu-call deleted
#
# Take RNNREG_GIT_COMMIT for the call before `slim` (`git rev-parse HEAD`): the code is the same,
# and the runs must name the commit that has it.  Long CPU runs in cpu-runs/ must be ignored
# (`echo /cpu-runs/ >> .git/info/exclude`), or they travel too.
set -euo pipefail
LIMIT=$((64 * 1024 * 1024))
SLIM_BRANCH=gpu-call
FROM_FILE=$(git rev-parse --git-dir)/gpu-call-from

travelling_bytes() {
  { git ls-files -z; git ls-files -z --others --exclude-standard; } \
    | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{ total += $1 } END { print total + 0 }'
}

check() {
  local bytes
  bytes=$(travelling_bytes)
  echo "travels: $((bytes / 1024 / 1024)) MiB of $((LIMIT / 1024 / 1024)) MiB (tracked and untracked-not-ignored files)"
  [ "$bytes" -le "$LIMIT" ]
}

case "${1:-check}" in
  check)
    check
    ;;
  slim)
    git diff --quiet HEAD || { echo "commit or stash your changes first: slim makes a commit" >&2; exit 2; }
    git rev-parse --abbrev-ref HEAD > "$FROM_FILE"
    git checkout -q -B "$SLIM_BRANCH"
    git rm -r -q runs/reference
    # (a machine with no git identity still makes this throw-away commit)
    name=$(git config user.name || echo rnnreg)
    email=$(git config user.email || echo rnnreg@localhost)
    git -c user.name="$name" -c user.email="$email" \
      commit -q -m "gpu call: the tree without runs/reference (the device tool's 64 MiB limit)"
    check
    ;;
  restore)
    [ -f "$FROM_FILE" ] || { echo "no slim to restore from" >&2; exit 2; }
    git checkout -q "$(cat "$FROM_FILE")"
    git branch -q -D "$SLIM_BRANCH"
    rm -f "$FROM_FILE"
    check || true
    ;;
  *)
    echo "usage: bash benchmarks/gpu_tree.sh check|slim|restore" >&2
    exit 2
    ;;
esac
