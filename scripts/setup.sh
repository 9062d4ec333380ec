#!/usr/bin/env bash
# Installs everything the build needs, idempotently (a second run takes well under a second):
#   - Debian packages: libhdf5-dev (HDF5 1.10 for hdf5-metno), libturbojpeg0-dev (libjpeg-turbo's
#     TurboJPEG library, the JPEG decoder OpenCV uses), pkg-config
#   - a CPU-capable libtorch 2.11.0 at .deps/libtorch (from PyPI wheels, no Python import needed)
#   - on a machine with an NVIDIA driver, or when asked with DEVICE=cuda (make run DEVICE=cuda):
#     the CUDA libraries libtorch's CUDA half loads, the same trimmed set as the CUDA image
#     (scripts/cuda-libs.sh), beside libtorch_cuda.so, whose rpath holds $ORIGIN. Without them a
#     GPU machine runs on the CPU (with a warning). DEVICE=cpu never installs them.
# The libtorch path is fixed (see .cargo/config.toml) so torch-sys is built once.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
deps="$root/.deps"
lt="$deps/libtorch"
want="2.11.0"
stamp="$deps/.setup-done-v2"
cuda_stamp="$deps/.cuda-libs-done-v1"

# Whether this machine wants the CUDA libraries: DEVICE=cuda|cpu decides, otherwise an NVIDIA
# driver (its /proc file, or nvidia-smi) does.
want_cuda() {
  case "${DEVICE:-}" in
    cuda) return 0 ;;
    cpu) return 1 ;;
  esac
  [ -e /proc/driver/nvidia/version ] || command -v nvidia-smi >/dev/null 2>&1
}

cuda_libs() {
  want_cuda || return 0
  [ -f "$cuda_stamp" ] && [ -f "$lt/torch/lib/libcublas.so.13" ] && return 0
  echo "setup: NVIDIA driver found or DEVICE=cuda: installing the CUDA libraries beside libtorch_cuda.so" >&2
  bash scripts/cuda-libs.sh "$deps/cuda-libs"
  local f
  for f in "$deps"/cuda-libs/*; do
    [ -e "$lt/torch/lib/$(basename "$f")" ] || mv "$f" "$lt/torch/lib/"
  done
  rm -rf "$deps/cuda-libs"
  if ldd "$lt/torch/lib/libtorch_cuda.so" | grep -v libcuda.so | grep -q "not found"; then
    echo "setup: libtorch_cuda.so still has unresolved libraries:" >&2
    ldd "$lt/torch/lib/libtorch_cuda.so" | grep "not found" >&2
    exit 78
  fi
  touch "$cuda_stamp"
  echo "setup: CUDA libraries installed ($(cat "$lt/torch/lib/CUDA-LIBRARIES.txt" | grep '^kept:'))" >&2
}

if [ -f "$stamp" ] && [ -f "$lt/torch/lib/libtorch_cpu.so" ]; then
  cuda_libs
  exit 0
fi

need_apt=()
dpkg -s libhdf5-dev >/dev/null 2>&1 || need_apt+=(libhdf5-dev)
dpkg -s libturbojpeg0-dev >/dev/null 2>&1 || need_apt+=(libturbojpeg0-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -f "$lt/torch/lib/libtorch_cpu.so" ]; then
  echo "setup: installing libtorch $want into $lt (PyPI wheels, ~1.2 GB)" >&2
  rm -rf "$lt.tmp"
  mkdir -p "$deps"
  python3 -m pip install -q --no-deps --no-compile --target "$lt.tmp" \
    "torch==$want" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85"
  rm -rf "$lt"
  mv "$lt.tmp" "$lt"
fi

# tch's own version check is skipped on the LIBTORCH route: check here.
got=$(sed -n "s/^__version__ = '\([^']*\)'.*/\1/p" "$lt/torch/version.py" | head -1)
case "$got" in
  "$want"|"$want"+*) ;;
  *) echo "setup: libtorch at $lt is version '$got', expected $want" >&2; exit 78 ;;
esac
# torch-sys reads this file and checks the version itself.
echo "$want" > "$lt/torch/build-version"

if ldd "$lt/torch/lib/libtorch_cpu.so" | grep -q "not found"; then
  echo "setup: libtorch_cpu.so has unresolved libraries:" >&2
  ldd "$lt/torch/lib/libtorch_cpu.so" | grep "not found" >&2
  exit 78
fi
touch "$stamp"
cuda_libs
echo "setup: done (libtorch $got, HDF5 $(dpkg-query -W -f='${Version}' libhdf5-dev)," \
  "libjpeg-turbo $(dpkg-query -W -f='${Version}' libturbojpeg0-dev))" >&2
