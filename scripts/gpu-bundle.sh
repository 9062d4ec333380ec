#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine into target/gpu-bundle: the release
# binaries, stripped, and the HDF5 libraries such a machine may lack. libtorch comes from that
# machine's Python torch; everything else is expected from its system (gpu-check.sh lists what is
# missing). The copy sent to a GPU machine is limited to 64 MiB.
#   scripts/gpu-bundle.sh [TARGET_DIR [PROFILE]]   (defaults: target, release)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-target}
profile=${2:-release}
bundle=target/gpu-bundle
limit=$((64 * 1024 * 1024))
rm -rf "$bundle"
mkdir -p "$bundle/lib"
for f in "$profile/maskomaly" "$profile/examples/gpu_check" "$profile/examples/bench_precision"; do
  strip --strip-all -o "$bundle/$(basename "$f")" "$target/$f"
done
# HDF5, its compression libraries and libturbojpeg: not part of a usual GPU machine's system.
for lib in libhdf5_serial.so.103 libsz.so.2 libaec.so.0 libturbojpeg.so.0; do
  path=$(ldd "$bundle/maskomaly" | awk -v l="$lib" '$1 == l { print $3 }')
  if [ -z "$path" ] || [ ! -f "$path" ]; then
    echo "gpu-bundle: $lib not found (is libhdf5-dev installed?)" >&2
    exit 1
  fi
  cp -L "$path" "$bundle/lib/$lib"
done
bytes=$(du -sb "$bundle" | cut -f1)
ls -l "$bundle" "$bundle/lib"
echo "gpu-bundle: $bundle is $((bytes / 1024 / 1024)) MiB ($bytes bytes; limit 64 MiB)"
if [ "$bytes" -ge "$limit" ]; then
  echo "gpu-bundle: too large for the 64 MiB copy" >&2
  exit 1
fi
