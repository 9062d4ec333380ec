# Shared helpers for the shell tests (tests/slurm.sh, tests/podman.sh). Sourced, not run.
# shellcheck shell=bash

log() {
  echo "[$(basename "$0")] $*" >&2
}

fail() {
  log "FAIL: $*"
  exit 1
}

skip() {
  log "SKIP: $*"
  exit 0
}

# The binary under test: $MASKOMALY, else the debug build in the cargo target folder (built if absent).
maskomaly_exe() {
  if [ -n "${MASKOMALY:-}" ]; then
    echo "$MASKOMALY"
    return
  fi
  local target=${CARGO_TARGET_DIR:-$PWD/target}
  if [ ! -x "$target/debug/maskomaly" ]; then
    log "building maskomaly (cargo build)"
    cargo build -q >&2
  fi
  echo "$target/debug/maskomaly"
}

# Inputs for a test run in DIR: images/ (the demo's 4 scenes, copied into 9 sub-folders: 36 items),
# model.pt (the tiny TorchScript model) and job.yaml (small preprocessing sizes: fast on CPU;
# one-item queues, so that a task stopped after its first item still has items left).
make_demo() {
  local exe=$1 dir=$2 sub f
  mkdir -p "$dir"
  "$exe" -q demo --dir "$dir/demo" >"$dir/demo.log" 2>&1 || fail "maskomaly demo failed: $(tail -n 20 "$dir/demo.log")"
  for sub in a b c d e f g h i; do
    mkdir -p "$dir/images/$sub"
    for f in "$dir"/demo/input/images/*; do
      cp "$f" "$dir/images/$sub/"
    done
  done
  "$exe" tiny-model "$dir/model.pt" || fail "maskomaly tiny-model failed"
  cat >"$dir/job.yaml" <<JOB
name: cluster-test
checkpoint: {format: torchscript, path: /models/model.pt}
preprocess: {min_size: 96, max_size: 192}
output: {heatmap: true}
runtime: {device: cpu, decode_workers: 1, queue_depth: 1}
JOB
}

# Output files of a run (relative paths), without the run's bookkeeping.
list_outputs() {
  (cd "$1" && find . -type f ! -path './manifests/*' ! -name manifest.json ! -name ro-crate-metadata.json \
    ! -name '.*' ! -name '*.tmp' | sed 's|^\./||' | LC_ALL=C sort)
}

count_outputs() {
  list_outputs "$1" | wc -l
}

# Fails unless A and B hold the same output files with the same bytes.
same_outputs() {
  local a=$1 b=$2 f
  [ "$(count_outputs "$a")" -gt 0 ] || fail "$a holds no outputs"
  diff <(list_outputs "$a") <(list_outputs "$b") >&2 || fail "$a and $b hold different output files"
  while read -r f; do
    cmp -s "$a/$f" "$b/$f" || fail "$f differs between $a and $b"
  done < <(list_outputs "$a")
}

# Per-item status lines of a manifest, for messages.
manifest_summary() {
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["status"], m["counts"])' "$1" 2>/dev/null \
    || echo "(unreadable manifest $1)"
}
