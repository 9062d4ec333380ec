#!/usr/bin/env bash
# GPU check, run from the repository root on a machine with an NVIDIA GPU after `make gpu-bundle`
# (built elsewhere; the machine needs no internet, no Rust and no build tools):
#   1. prerequisites: nvidia-smi with driver >= 580, glibc >= 2.34, Python torch 2.11.x, the bundle;
#   2. the bundled binaries load libtorch's CUDA half and see a GPU;
#   3. CPU-vs-GPU parity of `maskomaly run` (fp32) on the tiny model: max abs score difference <= 1e-4;
#   4. Swin-L (random weights) at 1024x2048 in every runtime.precision: forward-only and end-to-end
#      (`maskomaly run`) images/s, as a table and as JSON in $OUT (default target/bench/gpu).
#
#   scripts/gpu-check.sh [--cpu-dry-run] [--images N] [--reps N]
#
# --cpu-dry-run skips the GPU prerequisites and runs steps 2-4 on the CPU with tiny sizes (the
# tiny configuration, small images), to prove the plumbing on a machine without a GPU.
# Exit codes: 0 all passed, 1 a check failed, 2 usage, 69 a prerequisite is missing.
set -uo pipefail
cd "$(dirname "$0")/.."

dry=0
images=22
reps=10
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) dry=1 ;;
    --images) images=$2; shift ;;
    --reps) reps=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
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
else
  echo "(cpu dry run: no GPU checks)"
fi
glibc=$(ldd --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+$')
version_ge "${glibc:-0}" 2.34 || missing "glibc ${glibc:-unknown} is older than 2.34 (the bundle was built against 2.36)"
echo "glibc $glibc"
torch_info=$(python3 -c 'import torch,os;print(torch.__version__);print(os.path.dirname(torch.__file__))' 2>/dev/null)
torch_version=$(echo "$torch_info" | sed -n 1p)
torch_lib=$(echo "$torch_info" | sed -n 2p)/lib
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

step "3. parity: tiny model, runtime.device cpu vs $dev (fp32), tolerance 1e-4"
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
"$gc" compare "$work/parity-out-cpu" "$work/parity-out-$dev" --tol 1e-4 || fail "CPU and $dev score maps differ"

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
echo "model $preset (random weights), input ${h}x${w}, device $dev"
"$gc" forward --preset "$preset" --device "$dev" --height $h --width $w --reps "$reps" \
  --out "$out/forward.json" || fail "forward timings"
"$gc" images --dir "$work/time-in" --count "$images" --width $w --height $h >/dev/null || fail "images"
# End to end: the same run with `warm` and with all images; the difference cancels start-up and
# model building.
now() { date +%s.%N; }
echo '{}' > "$out/run.json"
printf '| precision | maskomaly run images/s (%s images, start-up excluded) |\n| --- | --- |\n' "$((images - warm))"
for p in fp32 tf32 bf16 fp16; do
  cat > "$work/time-$p.yaml" <<YAML
dataset: {root: $work/time-in}
model: {preset: $preset}
checkpoint: {format: random, url: null}
preprocess: {min_size: $h, max_size: $w}
$method
output: {root: $work/time-out-$p, png: false}
runtime: {device: $dev, precision: $p}
YAML
  t0=$(now); "$mk" -q run --job "$work/time-$p.yaml" --limit $warm --overwrite 2>"$work/err-$p.txt"; rc1=$?
  t1=$(now); "$mk" -q run --job "$work/time-$p.yaml" --overwrite 2>>"$work/err-$p.txt"; rc2=$?
  t2=$(now)
  if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ]; then
    echo "| $p | not available: $(head -1 "$work/err-$p.txt") |"
    ips=null
  else
    ips=$(python3 -c "d = ($t2 - $t1) - ($t1 - $t0); print(round(($images - $warm) / d, 3) if d > 0 else 'null')")
    echo "| $p | $ips |"
  fi
  python3 - "$out/run.json" "$p" "$ips" <<'PY'
import json, sys
path, p, ips = sys.argv[1], sys.argv[2], sys.argv[3]
d = json.load(open(path))
d[p] = None if ips == "null" else float(ips)
json.dump(d, open(path, "w"), indent=2)
PY
done
python3 - "$out" "$preset" "$h" "$w" "$dev" "$images" "$warm" "$dry" <<'PY'
import json, sys, os
out, preset, h, w, dev, images, warm, dry = sys.argv[1:]
fwd = json.load(open(os.path.join(out, "forward.json")))
run = json.load(open(os.path.join(out, "run.json")))
summary = {"benchmark": "gpu-check", "cpu_dry_run": dry == "1", "preset": preset,
           "height": int(h), "width": int(w), "device": fwd["device"],
           "run_images": int(images) - int(warm), "forward": fwd["modes"], "run_images_per_s": run}
json.dump(summary, open(os.path.join(out, "gpu-check.json"), "w"), indent=2)
print(f"\nwritten: {out}/gpu-check.json, {out}/forward.json")
PY
echo
echo "gpu-check: all steps passed$([ $dry -eq 1 ] && echo ' (cpu dry run: no GPU figures)')"
