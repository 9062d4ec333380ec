#!/usr/bin/env bash
# Makes the local Debian base image that every maskomaly image builds on, without a registry:
# mmdebstrap writes a minimal bookworm root file system (cached as a tar in $MASKOMALY_CACHE_DIR,
# default ~/.cache/maskomaly) and podman imports it. Prints the image name. Idempotent.
#
#   docker/base-image.sh
set -euo pipefail

cache=${MASKOMALY_CACHE_DIR:-$HOME/.cache/maskomaly}
base_tar="$cache/debian-bookworm-minbase.tar"
base_image=localhost/maskomaly-base:bookworm
if ! podman image exists "$base_image"; then
  if [ ! -f "$base_tar" ]; then
    mkdir -p "$cache"
    echo "base-image: making $base_tar with mmdebstrap (once, ~1 min)" >&2
    mmdebstrap --variant=minbase --quiet bookworm "$base_tar.partial.tar" >&2
    mv "$base_tar.partial.tar" "$base_tar"
  fi
  podman import -q "$base_tar" "$base_image" >/dev/null
fi
echo "$base_image"
