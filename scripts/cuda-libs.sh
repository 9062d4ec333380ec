#!/usr/bin/env bash
# The CUDA libraries of the GPU image, from PyPI wheels only (the NVIDIA driver's own libcuda.so.1
# comes from the host through the container toolkit):
#   1. installs the exact CUDA wheels libtorch 2.11.0+cu130 depends on into .deps/cuda-wheels (once);
#   2. copies into DEST only what the runner loads: the ELF dependency closure (DT_NEEDED) of
#      libtorch's CUDA half, plus the libraries that are opened with dlopen and so never appear in
#      that closure (see KEEP_DLOPEN below), and writes DEST/CUDA-LIBRARIES.txt saying why each is
#      there and how large the trimmed set is against a copy of every library of every wheel.
#
#   scripts/cuda-libs.sh DEST
#
# CUDA_LIBS_FROM="DIR:DIR..." takes the libraries from those folders instead (a GPU machine's own
# torch/lib and nvidia/*/lib, see scripts/gpu-check.sh), so that the same trimmed set can be proven
# there without the wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: scripts/cuda-libs.sh DEST}
torch_lib=$PWD/.deps/libtorch/torch/lib
wheels=$PWD/.deps/cuda-wheels
stamp=$wheels/.installed-v1

# torch 2.11.0's Linux requirements (cuda-toolkit 13.0.2's components, cuDNN, cuSPARSELt, NCCL,
# NVSHMEM), pinned to the versions that resolve for it.
PINS=(
  nvidia-cublas==13.1.0.3 nvidia-cuda-cupti==13.0.85 nvidia-cuda-nvrtc==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cudnn-cu13==9.19.0.56 nvidia-cufft==12.0.0.61
  nvidia-cufile==1.15.1.6 nvidia-curand==10.4.0.35 nvidia-cusolver==12.0.4.66
  nvidia-cusparse==12.6.3.3 nvidia-cusparselt-cu13==0.8.0 nvidia-nccl-cu13==2.28.9
  nvidia-nvjitlink==13.0.88 nvidia-nvshmem-cu13==3.4.5 nvidia-nvtx==13.0.85
)
# Roots: libtorch's CUDA half as the runner opens it (src/cuda.rs) and what it needs.
ROOTS=(libtorch_cuda.so libc10_cuda.so)
# Opened with dlopen, so absent from every DT_NEEDED list:
#   libcaffe2_nvrtc.so + libnvrtc: libtorch compiles some kernels at run time (jiterator, fusers);
#   libnvrtc-builtins: opened by libnvrtc;
#   libcudnn_*: libcudnn.so.9 is a shim that opens its sub-libraries; adv (RNNs, CTC, the legacy
#   multi-head attention) is left out: the network has none of them.
KEEP_DLOPEN=(libcaffe2_nvrtc.so libnvrtc-builtins.so.13.0 libcudnn_graph.so.9 libcudnn_ops.so.9
  libcudnn_cnn.so.9 libcudnn_heuristic.so.9 libcudnn_engines_precompiled.so.9
  libcudnn_engines_runtime_compiled.so.9)
# Provided by the host's driver, never copied.
HOST=(libcuda.so.1)

if [ -n "${CUDA_LIBS_FROM:-}" ]; then
  IFS=: read -ra dirs <<<"$CUDA_LIBS_FROM"
else
  if [ ! -f "$stamp" ]; then
    echo "cuda-libs: installing ${#PINS[@]} CUDA wheels into $wheels (~2.7 GB, once)" >&2
    rm -rf "$wheels.tmp"
    python3 -m pip install -q --no-deps --no-compile --target "$wheels.tmp" "${PINS[@]}"
    rm -rf "$wheels"
    mv "$wheels.tmp" "$wheels"
    touch "$stamp"
  fi
  dirs=("$torch_lib")
  for d in "$wheels"/nvidia/*/lib; do dirs+=("$d"); done
fi
find_lib() {
  local d
  for d in "${dirs[@]}"; do
    if [ -e "$d/$1" ]; then echo "$d/$1"; return 0; fi
  done
  return 1
}

declare -A why=()
queue=()
for r in "${ROOTS[@]}"; do why[$r]="libtorch's CUDA half"; queue+=("$r"); done
for r in "${KEEP_DLOPEN[@]}"; do why[$r]="opened with dlopen"; queue+=("$r"); done
while [ ${#queue[@]} -gt 0 ]; do
  lib=${queue[0]}
  queue=("${queue[@]:1}")
  path=$(find_lib "$lib") || { echo "cuda-libs: $lib not found in ${dirs[*]}" >&2; exit 1; }
  for need in $(readelf -d "$path" | awk '/NEEDED/ { gsub(/[][]/, "", $5); print $5 }'); do
    [ -n "${why[$need]:-}" ] && continue
    case " ${HOST[*]} " in *" $need "*) continue ;; esac
    # System libraries (glibc, libstdc++, ...) and libtorch_cpu's own closure are not in these
    # folders' CUDA set or come with the binary's bundle.
    find_lib "$need" >/dev/null || continue
    why[$need]="needed by $lib"
    queue+=("$need")
  done
done

rm -rf "$dest"
mkdir -p "$dest"
kept=0
report="$dest/CUDA-LIBRARIES.txt"
{
  echo "CUDA libraries of this image and why each is here (scripts/cuda-libs.sh)."
  echo "libcuda.so.1 (the driver) comes from the host."
  echo
} >"$report"
for lib in $(printf '%s\n' "${!why[@]}" | LC_ALL=C sort); do
  path=$(find_lib "$lib")
  cp -L "$path" "$dest/$lib"
  size=$(stat -L -c %s "$path")
  kept=$((kept + size))
  printf '%-45s %6d MiB  %s\n' "$lib" $((size / 1048576)) "${why[$lib]}" >>"$report"
done
naive=$(find "${dirs[@]}" -maxdepth 1 -name '*.so*' -print0 | du -cbL --files0-from=- | tail -1 | cut -f1)
{
  echo
  echo "kept: ${#why[@]} libraries, $((kept / 1048576)) MiB"
  echo "every library of libtorch and of every CUDA wheel: $((naive / 1048576)) MiB"
  if [ -z "${CUDA_LIBS_FROM:-}" ]; then
    whole=$(du -scb "$wheels" "$PWD/.deps/libtorch" | tail -1 | cut -f1)
    echo "the torch wheel and every CUDA wheel copied whole: $((whole / 1048576)) MiB"
  fi
} >>"$report"
cat "$report" >&2
