#!/usr/bin/env bash
# GPU check, run from the repository root on a machine with an NVIDIA GPU after `make gpu-bundle`
# (built elsewhere; the machine needs no internet, no Rust and no build tools):
#   1. prerequisites: nvidia-smi with driver >= 580, glibc >= 2.34, Python torch 2.11.x, the bundle;
#   2. the bundled binaries load libtorch's CUDA half and see a GPU;
#   3. CPU-vs-GPU parity of `maskomaly run` (fp32) on the tiny model: the count and share of pixels
#      whose scores differ by more than 1e-5 (a last-bit difference can flip a pixel across
#      Maskomaly's hard border threshold) and the max difference on the rest; then the same GPU run
#      against the CUDA image's trimmed library set (scripts/cuda-libs.sh), not the machine's own
#      full torch libraries, so that the image's library list is proven on a GPU;
#   4. Swin-L (random weights) at 1024x2048 in every runtime.precision: forward-only and end-to-end
#      (`maskomaly run`) images/s, as a table and as JSON in $OUT (default target/bench/gpu).
#
#   scripts/gpu-check.sh [--cpu-dry-run] [--images N] [--reps N]
#
# MAX_SHARE (default 0.001): the largest share of pixels allowed beyond 1e-5 in step 3.
# PROFILE=1 times the end-to-end runs with `maskomaly run --profile` (the device synchronised
# around each stage: true per-stage times, but the stages no longer overlap).
#
# --cpu-dry-run skips the GPU prerequisites and runs steps 2-4 on the CPU with tiny sizes (the
# tiny configuration, small images), to prove the plumbing on a machine without a GPU.
# Exit codes: 0 all passed, 1 a check failed, 2 usage, 69 a prerequisite is missing.
set -uo pipefail
cd "$(dirname "$0")/.."

dry=0
images=22
reps=6
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) dry=1 ;;
    --images) images=$2; shift ;;
    --reps) reps=$2; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

bundle=target/gpu-bundle
out=${OUT:-target/bench/gpu}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

missing() { echo "gpu-check: PREREQUISITE MISSING: $*" >&2; exit 69; }
fail() { echo "gpu-check: FAILED: $*" >&2; exit 1; }
step() { echo; echo "== $*"; }
# version_ge A B: whether dotted version A >= B.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }

step "1. prerequisites"
if [ $dry -eq 0 ]; then
  command -v nvidia-smi >/dev/null 2>&1 \
    || missing "nvidia-smi not found: no NVIDIA driver on this machine (use --cpu-dry-run to test the plumbing on a CPU)"
  driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
  [ -n "$driver" ] || missing "nvidia-smi lists no GPU"
  [ "${driver%%.*}" -ge 580 ] 2>/dev/null \
    || missing "NVIDIA driver $driver is too old: libtorch 2.11 with CUDA 13.0 needs driver >= 580"
  echo "driver $driver: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)"
  { date -u +%Y-%m-%dT%H:%M:%SZ; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv;
    nproc; grep -m1 "model name" /proc/cpuinfo; } > "$out/machine.txt" 2>&1
else
  echo "(cpu dry run: no GPU checks)"
fi
glibc=$(ldd --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+$')
version_ge "${glibc:-0}" 2.34 || missing "glibc ${glibc:-unknown} is older than 2.34 (the bundle was built against 2.36)"
echo "glibc $glibc"
torch_info=$(python3 -c 'import torch,os;print(torch.__version__);print(os.path.dirname(torch.__file__))' 2>/dev/null)
torch_version=$(echo "$torch_info" | sed -n 1p)
torch_dir=$(echo "$torch_info" | sed -n 2p)
torch_lib=$torch_dir/lib
if [ -z "$torch_version" ] && [ $dry -eq 1 ] && [ -f .deps/libtorch/torch/lib/libtorch_cpu.so ]; then
  # No importable torch here: the checkout's own libtorch stands in.
  torch_version=$(sed -n "s/^__version__ = '\([^']*\)'.*/\1/p" .deps/libtorch/torch/version.py)
  torch_lib=$PWD/.deps/libtorch/torch/lib
fi
[ -n "$torch_version" ] || missing "python3 cannot import torch (need torch 2.11.x with CUDA)"
case "$torch_version" in
  2.11.*) ;;
  *) missing "torch is $torch_version, the bundle needs libtorch 2.11.x" ;;
esac
echo "torch $torch_version at $torch_lib"
for f in maskomaly gpu_check; do
  [ -x "$bundle/$f" ] || missing "$bundle/$f not found: run \`make gpu-bundle\` on the build machine and copy target/gpu-bundle"
done
export LD_LIBRARY_PATH="$torch_lib:$PWD/$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MASKOMALY_TORCH_CUDA="$torch_lib/libtorch_cuda.so"
for f in maskomaly gpu_check; do
  unresolved=$(ldd "$bundle/$f" | grep "not found")
  [ -z "$unresolved" ] || missing "$bundle/$f needs libraries this machine lacks (install them, e.g. libcurl4, or copy them into $bundle/lib):
$unresolved"
done
echo "bundle: $(du -sh "$bundle" | cut -f1), every library resolves"
mk="$bundle/maskomaly"
gc="$bundle/gpu_check"

step "2. CUDA from the bundled binaries"
if [ $dry -eq 0 ]; then
  "$gc" devices --require-cuda || fail "libtorch sees no CUDA device (see the lines above)"
  dev=cuda
else
  "$gc" devices || fail "gpu_check devices"
  dev=cpu
fi

step "3. parity: tiny model, runtime.device cpu vs $dev (fp32), tolerance 1e-5"
"$gc" images --dir "$work/parity-in" --count 4 --width 512 --height 256 >/dev/null || fail "images"
"$mk" -q tiny-model "$work/tiny.pt" || fail "tiny-model"
for d in cpu "$dev"; do
  cat > "$work/parity-$d.yaml" <<YAML
dataset: {root: $work/parity-in}
checkpoint: {format: torchscript, path: $work/tiny.pt, url: null}
output: {root: $work/parity-out-$d, png: false}
runtime: {device: $d, precision: fp32}
YAML
  "$mk" -q run --job "$work/parity-$d.yaml" || fail "maskomaly run on $d"
done
parity_ok=1
max_share=${MAX_SHARE:-0.001}
"$gc" compare "$work/parity-out-cpu" "$work/parity-out-$dev" --tol 1e-5 --max-share "$max_share" | tee "$out/parity.txt" \
  || { parity_ok=0; echo "gpu-check: more than $max_share of the pixels differ by more than 1e-5 between CPU and $dev (timings follow)" >&2; }

step "3b. the CUDA image's trimmed library set"
image_ok=1
if [ $dry -eq 0 ] && ! command -v readelf >/dev/null 2>&1; then
  echo "gpu-check: SKIPPED: readelf (binutils) is not installed, so the trimmed set cannot be made here" >&2
elif [ $dry -eq 0 ]; then
  # The image's rule (scripts/cuda-libs.sh) applied to this machine's torch and nvidia wheels:
  # copied flat into one folder as in the image, so that nothing outside the set can be found.
  from="$torch_lib"
  for d in "$(dirname "$torch_dir")"/nvidia/*/lib; do [ -d "$d" ] && from="$from:$d"; done
  if CUDA_LIBS_FROM="$from" bash scripts/cuda-libs.sh "$work/image-libs" 2>"$work/image-libs.txt"; then
    tail -3 "$work/image-libs/CUDA-LIBRARIES.txt"
    img_env=(env LD_LIBRARY_PATH="$work/image-libs:$PWD/$bundle/lib" MASKOMALY_TORCH_CUDA="$work/image-libs/libtorch_cuda.so")
    "${img_env[@]}" "$mk" info | tee "$out/info-image-libs.txt"
    grep -q '^cuda support: loaded from' "$out/info-image-libs.txt" || { image_ok=0; echo "gpu-check: libtorch_cuda.so does not load from the trimmed set" >&2; }
    sed "s#parity-out-$dev#parity-out-image#" "$work/parity-$dev.yaml" > "$work/parity-image.yaml"
    if [ $image_ok -eq 1 ] && "${img_env[@]}" "$mk" -q run --job "$work/parity-image.yaml"; then
      "$gc" compare "$work/parity-out-$dev" "$work/parity-out-image" --tol 1e-5 --max-share "$max_share" | tail -1 | tee "$out/parity-image-libs.txt" \
        || { image_ok=0; echo "gpu-check: the trimmed set gives other maps than the full libraries" >&2; }
    else
      image_ok=0
      echo "gpu-check: maskomaly run fails against the trimmed library set" >&2
    fi
  else
    image_ok=0
    echo "gpu-check: the trimmed set cannot be made from $from: $(tail -3 "$work/image-libs.txt")" >&2
  fi
else
  echo "(cpu dry run: no CUDA libraries to trim)"
fi

step "4. timings per runtime.precision"
if [ $dry -eq 0 ]; then
  preset=mask2former_swin_large_cityscapes_semantic
  h=1024 w=2048 warm=2
  method=""
else
  preset=tiny
  h=64 w=128 warm=1 images=4 reps=2
  # The tiny configuration: 8 queries, 4 classes + void.
  method="method: {anomaly_queries: [1, 2], ground_queries: [0], void_class: 4}"
fi
precisions=${PRECISIONS:-fp32 tf32 bf16 fp16}
# GPU load and memory, sampled every 100 ms while a command runs: sampled FILE CMD...
sampled() {
  local file=$1; shift
  local pid=""
  if [ $dry -eq 0 ]; then
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 100 > "$file" 2>/dev/null &
    pid=$!
  else
    : > "$file"
  fi
  "$@"; local rc=$?
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  return $rc
}
echo "model $preset (random weights), input ${h}x${w}, device $dev"
echo '{}' > "$out/forward-all.json"
for p in $precisions; do
  sampled "$out/smi-forward-$p.csv" "$gc" forward --preset "$preset" --device "$dev" --height $h --width $w \
    --reps "$reps" --precisions "$p" --out "$out/forward-$p.json" || fail "forward timings ($p)"
done
"$gc" modules --preset "$preset" --device "$dev" --height $h --width $w --reps 3 \
  --precisions "$(echo $precisions | tr ' ' ',')" --out "$out/modules.json" || echo "(module breakdown failed)"
"$gc" images --dir "$work/time-in" --count "$images" --width $w --height $h >/dev/null || fail "images"
# End to end: the same run with `warm` and with all images; the difference cancels start-up and
# model building. The second run's --json summary gives the per-stage breakdown.
now() { date +%s.%N; }
for p in $precisions; do
  cat > "$work/time-$p.yaml" <<YAML
dataset: {root: $work/time-in}
model: {preset: $preset}
checkpoint: {format: random, url: null}
preprocess: {min_size: $h, max_size: $w}
$method
output: {root: $work/time-out-$p, png: false}
runtime: {device: $dev, precision: $p${RUNTIME_EXTRA:+, $RUNTIME_EXTRA}}
YAML
  t0=$(now); "$mk" -q run --job "$work/time-$p.yaml" --limit $warm --overwrite 2>"$work/err-$p.txt" >/dev/null; rc1=$?
  t1=$(now); sampled "$out/smi-run-$p.csv" "$mk" -q run --job "$work/time-$p.yaml" --overwrite --json ${PROFILE:+--profile} 2>>"$work/err-$p.txt" >"$out/run-$p.json"; rc2=$?
  t2=$(now)
  cp "$work/time-out-$p/manifest.json" "$out/manifest-$p.json" 2>/dev/null
  if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ]; then
    echo "$p: end-to-end run failed: $(head -3 "$work/err-$p.txt")"
    echo "null" > "$out/run-$p.json"
  fi
  echo "$t0 $t1 $t2" > "$out/wall-$p.txt"
done
python3 - "$out" "$preset" "$h" "$w" "$dev" "$images" "$warm" "$dry" $precisions <<'PY'
import json, sys, os
out, preset, h, w, dev, images, warm, dry, *precs = sys.argv[1:]
n = int(images) - int(warm)

def smi(path):
    util, mem = [], []
    for line in open(path) if os.path.exists(path) else []:
        parts = [x.strip() for x in line.split(",")]
        try:
            util.append(float(parts[0])); mem.append(float(parts[1]))
        except (ValueError, IndexError):
            pass
    if not util:
        return None
    return {"samples": len(util), "util_mean_pct": sum(util) / len(util),
            "util_busy_mean_pct": (sum(u for u in util if u > 0) / max(1, sum(1 for u in util if u > 0))),
            "mem_peak_mib": max(mem)}

rows = []
print("\n| precision | forward-only images/s | end-to-end images/s | ratio | GPU util % (e2e) | peak GPU MiB (forward / e2e) |")
print("| --- | --- | --- | --- | --- | --- |")
for p in precs:
    fwd = json.load(open(os.path.join(out, f"forward-{p}.json")))["modes"][0]
    f_ips = fwd.get("images_per_s")
    t0, t1, t2 = map(float, open(os.path.join(out, f"wall-{p}.txt")).read().split())
    d = (t2 - t1) - (t1 - t0)
    run = json.load(open(os.path.join(out, f"run-{p}.json")))
    e_ips = round(n / d, 3) if (run and d > 0) else None
    ratio = round(e_ips / f_ips, 3) if (e_ips and f_ips) else None
    s_f, s_r = smi(os.path.join(out, f"smi-forward-{p}.csv")), smi(os.path.join(out, f"smi-run-{p}.csv"))
    row = {"precision": p, "forward_images_per_s": f_ips, "run_images_per_s": e_ips, "ratio": ratio,
           "run_summary": run, "gpu_forward": s_f, "gpu_run": s_r}
    rows.append(row)
    fmt = lambda v, k="%.2f": (k % v) if isinstance(v, (int, float)) else "n/a"
    print(f"| {p} | {fmt(f_ips)} | {fmt(e_ips)} | {fmt(ratio)} | "
          f"{fmt(s_r and s_r['util_mean_pct'], '%.0f')} | "
          f"{fmt(s_f and s_f['mem_peak_mib'], '%.0f')} / {fmt(s_r and s_r['mem_peak_mib'], '%.0f')} |")
print("\nper-stage mean ms per item in the end-to-end run (queues: mean messages waiting when taken;"
      + (" device synchronised around each stage):" if os.environ.get("PROFILE") else
         " on a GPU the stages are not synchronised, so a stage's time is mostly launch time: PROFILE=1 times them apart):"))
for r in rows:
    s = r["run_summary"]
    if s:
        st = " ".join(f"{k} {s['stage_mean_ms'][k]:.1f}" for k in
                      ["decode", "upload", "forward", "score", "download", "write"])
        qs = " ".join(f"{k} {v:.2f}" for k, v in s["queue_mean"].items())
        print(f"  {r['precision']}: {st} | queues {qs} (depth {s['queue_depth']})")
mods = os.path.join(out, "modules.json")
summary = {"benchmark": "gpu-check", "cpu_dry_run": dry == "1", "preset": preset,
           "height": int(h), "width": int(w), "device": dev, "run_images": n, "modes": rows,
           "modules": json.load(open(mods)) if os.path.exists(mods) else None}
json.dump(summary, open(os.path.join(out, "gpu-check.json"), "w"), indent=2)
print(f"\nwritten: {out}/gpu-check.json")
PY
echo
[ $parity_ok -eq 1 ] || fail "parity: more than $max_share of the pixels differ by more than 1e-5 between CPU and $dev"
[ $image_ok -eq 1 ] || fail "the CUDA image's trimmed library set (step 3b)"
echo "gpu-check: all steps passed$([ $dry -eq 1 ] && echo ' (cpu dry run: no GPU figures)')"
