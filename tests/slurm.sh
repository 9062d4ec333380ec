#!/usr/bin/env bash
# Slurm test: a 3-task job array of `maskomaly run` writes the same files as one process, and a task
# preempted with SIGTERM mid-run and requeued still gives the complete, identical result.
#
#   tests/slurm.sh            (after `cargo build`; MASKOMALY=path overrides the binary)
#
# Starts a private single-node Slurm (scripts/slurm-local.sh) under a temp root and stops it at the
# end. Skips (exit 0) when the Slurm or munge binaries are absent.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck source=tests/lib.sh
source tests/lib.sh

for tool in sbatch squeue scontrol scancel slurmctld slurmd munged mungekey; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool not installed (scripts/ci-deps.sh installs slurm-wlm and munge)"
done
t0=$(date +%s.%N)

work=$(mktemp -d /tmp/maskomaly-slurm.XXXXXX)
slurm_root="$work/slurm"
cleanup() {
  local rc=$?
  scripts/slurm-local.sh stop "$slurm_root" 2>/dev/null || true
  if [ "$rc" -ne 0 ] && [ -n "${KEEP_ON_FAILURE:-}" ]; then
    log "kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

exe=$(maskomaly_exe)
exe=$(readlink -f "$exe")
make_demo "$exe" "$work/demo"
job="$work/demo/job.yaml"
images="$work/demo/images"
model="$work/demo/model.pt"
n_images=$(find "$images" -type f | wc -l)
[ "$n_images" -ge 6 ] || fail "the demo made $n_images images; the test needs at least 6 (2 per task)"

# Reference: one process over everything.
"$exe" run --job "$job" --input "$images" --output "$work/ref" --checkpoint "$model" --device cpu \
  >"$work/ref.log" 2>&1 || fail "single-process run failed: $(tail -n 20 "$work/ref.log")"

scripts/slurm-local.sh start "$slurm_root"
eval "$(scripts/slurm-local.sh env "$slurm_root")"

# The runner under test, through a wrapper that records its PID per task so the test can hold a
# task at a chosen point (SIGSTOP) instead of racing a fast run.
cat >"$work/runner.sh" <<WRAP
#!/usr/bin/env bash
echo \$\$ > "$work/pid.\${SLURM_ARRAY_TASK_ID}"
exec "$exe" "\$@"
WRAP
chmod +x "$work/runner.sh"

submit() {
  local out=$1
  mkdir -p "$out"
  MASKOMALY="$work/runner.sh" sbatch --parsable --array=0-2 --cpus-per-task=1 \
    --output="$work/logs/%A_%a.out" --chdir="$work" --export=ALL \
    jobs/slurm/maskomaly-array.sbatch --job "$job" --input "$images" --output "$out" \
    --checkpoint "$model" --device cpu
}

wait_job() {
  local id=$1
  for _ in $(seq 1 1500); do
    [ -z "$(squeue -h -j "$id" 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  fail "job $id still queued or running after 300 s: $(squeue -j "$id")"
}

# "task state exit" per array task of job $1.
task_states() {
  scontrol -o show job "$1" | sed -n 's/.*ArrayTaskId=\([0-9]*\).*JobState=\([A-Z_]*\).*ExitCode=\([0-9:]*\).*/\1 \2 \3/p' | sort -n
}

merge_verify_compare() {
  local out=$1
  "$exe" merge "$out" >"$out.merge.log" 2>&1 || fail "merge $out failed: $(cat "$out.merge.log")"
  "$exe" verify "$out" >"$out.verify.log" 2>&1 || fail "verify $out failed: $(cat "$out.verify.log")"
  same_outputs "$work/ref" "$out"
  local st
  st=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["status"], m["counts"]["total"], m["counts"]["written"]+m["counts"]["skipped"])' "$out/manifest.json")
  [ "$st" = "complete $n_images $n_images" ] || fail "merged manifest of $out: '$st', expected 'complete $n_images $n_images'"
}

mkdir -p "$work/logs"

# 1. Plain array run.
t_array=$(date +%s.%N)
job1=$(submit "$work/out1")
log "submitted array job $job1"
wait_job "$job1"
states=$(task_states "$job1")
[ "$(echo "$states" | grep -c ' COMPLETED 0:0$')" = 3 ] || fail "array tasks did not all complete: $states; logs: $(cat "$work"/logs/*)"
for k in 0 1 2; do
  [ -f "$work/out1/manifests/shard-0000$k-of-00003.json" ] || fail "task $k wrote no shard manifest"
done
merge_verify_compare "$work/out1"
log "array run: 3 tasks, merged output identical to the single-process run ($(awk -v a="$t_array" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s)"

# 2. Preempt task 1 mid-run, then requeue it.
rm -f "$work"/pid.*
job2=$(submit "$work/out2")
log "submitted array job $job2; preempting task 1 after its first item"
shard1="$work/out2/manifests/shard-00001-of-00003.json"
# The journal gets a line per finished item at once (the manifest is rewritten at most once a second).
journal="$shard1.journal"
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
held=""
for _ in $(seq 1 3000); do
  if [ -s "$work/pid.1" ] && [ "$(lines "$journal")" -ge 1 ]; then
    pid=$(cat "$work/pid.1")
    # Hold the runner so the signal lands mid-run however fast the items are.
    kill -STOP "$pid" 2>/dev/null && held=$pid
    break
  fi
  sleep 0.02
done
[ -n "$held" ] || fail "task 1 never recorded an item ($(manifest_summary "$shard1"))"
total=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["total"])' "$shard1")
written=$(lines "$journal")
if [ ! -f "$journal" ] || [ "$written" -ge "$total" ]; then
  kill -CONT "$held" || true
  fail "task 1 had finished all $total items when held; the test needs more images per task"
fi
# --batch: the signal goes to the batch shell, which forwards it to the runner (as with
# `--signal=B:TERM@grace` before a time limit or preemption).
scancel --batch --signal=TERM "${job2}_1"
sleep 0.5
kill -CONT "$held"
wait_job "$job2"
states=$(task_states "$job2")
echo "$states" | grep -q '^1 [A-Z_]* 143:0$' || fail "preempted task did not exit 143: $states; log: $(cat "$work"/logs/"${job2}"_1.out)"
[ "$(echo "$states" | grep -c ' COMPLETED 0:0$')" = 2 ] || fail "the other tasks did not complete: $states"
st=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["status"], m["counts"]["written"] < m["counts"]["total"])' "$shard1")
[ "$st" = "interrupted True" ] || fail "preempted shard manifest: '$st', expected 'interrupted True'"
# A merge now must name the missing items and fail.
if "$exe" merge "$work/out2" >"$work/premerge.log" 2>&1; then
  fail "merge succeeded with an interrupted shard: $(cat "$work/premerge.log")"
fi
grep -q "not produced" "$work/premerge.log" || fail "merge did not name the missing items: $(cat "$work/premerge.log")"

t_requeue=$(date +%s.%N)
scontrol requeue "${job2}_1"
wait_job "$job2"
states=$(task_states "$job2")
[ "$(echo "$states" | grep -c ' COMPLETED 0:0$')" = 3 ] || fail "after requeue: $states; log: $(cat "$work"/logs/"${job2}"_1.out)"
grep -q "restart 1" "$work/logs/${job2}_1.out" || fail "the requeued task did not see SLURM_RESTART_COUNT=1"
merge_verify_compare "$work/out2"
log "preempt + requeue: interrupted shard finished on requeue ($(awk -v a="$t_requeue" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s from requeue), output identical"

log "PASS ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s)"
