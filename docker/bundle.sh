#!/usr/bin/env bash
# Collects a built maskomaly binary and the shared libraries it loads into one folder
# (DEST/bin/maskomaly, DEST/lib/*.so*), for a runtime image that has no toolchain and no Python.
#
#   docker/bundle.sh BINARY DEST [EXTRA_LIB_DIR...]
#
# The libraries are the binary's ldd closure (libtorch, c10, gomp, HDF5, libturbojpeg and their own
# needs), without the C runtime that every base image provides (glibc, libstdc++, libgcc_s): copying
# those from the build image could shadow the newer ones of a newer base. EXTRA_LIB_DIRs are
# copied whole, for libraries that are opened with dlopen at run time (cuDNN's engines, NVRTC) and
# so never appear in ldd's output.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BINARY DEST [EXTRA_LIB_DIR...]" >&2
  exit 64
fi
bin=$1
dest=$2
shift 2

mkdir -p "$dest/bin" "$dest/lib"
cp "$bin" "$dest/bin/maskomaly"

if ldd "$bin" | grep -q "not found"; then
  echo "bundle: $bin has unresolved libraries:" >&2
  ldd "$bin" | grep "not found" >&2
  exit 78
fi
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | while read -r name path; do
  case "$name" in
    libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*|libstdc++.so.*|libgcc_s.so.*) continue ;;
  esac
  cp -L "$path" "$dest/lib/$name"
done
for dir in "$@"; do
  [ -d "$dir" ] || continue
  find "$dir" -maxdepth 1 -name '*.so*' -exec cp -L {} "$dest/lib/" \;
done
echo "bundle: $(find "$dest/lib" -type f | wc -l) libraries, $(du -sh "$dest" | cut -f1) in $dest" >&2
