#!/usr/bin/env bash
# Builds the runner's container image offline, from nothing but the registries the project uses:
# the Debian base comes from mmdebstrap (docker/base-image.sh), the binary from this checkout's
# release build, libtorch and the CUDA libraries from PyPI wheels (scripts/setup.sh,
# scripts/cuda-libs.sh). No base image is pulled.
#
#   scripts/image.sh cpu|cuda [TAG]       (make image / make image-cuda)
#
#   cpu    localhost/maskomaly:cpu   the binary and the libraries it links (CPU path only)
#   cuda   localhost/maskomaly:cuda  plus libtorch's CUDA half and the CUDA libraries it loads;
#          run with the host's NVIDIA driver passed in (docker --gpus all, podman --device
#          nvidia.com/gpu=all, apptainer --nv)
# Also writes target/image/maskomaly-VARIANT.oci.tar (for `apptainer build ... oci-archive://...`)
# and prints the image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:?usage: scripts/image.sh cpu|cuda [TAG]}
tag=${2:-localhost/maskomaly:$variant}
case "$variant" in cpu|cuda) ;; *) echo "image: variant must be cpu or cuda, not $variant" >&2; exit 64 ;; esac
for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || { echo "image: $tool is not installed (scripts/ci-deps.sh installs it)" >&2; exit 69; }
done
t0=$(date +%s)
target=${CARGO_TARGET_DIR:-$PWD/target}
out=target/image
mkdir -p "$out"

bash scripts/setup.sh
cargo build --release --locked --bin maskomaly
base=$(bash docker/base-image.sh)

ctx=$(mktemp -d /tmp/maskomaly-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
cp -r docker "$ctx/"
extra=()
if [ "$variant" = cuda ]; then
  bash scripts/cuda-libs.sh "$ctx/cuda-libs"
  extra+=("$ctx/cuda-libs")
fi
docker/bundle.sh "$target/release/maskomaly" "$ctx/dist/bundle" "${extra[@]}"
[ "$variant" = cuda ] && cp "$ctx/cuda-libs/CUDA-LIBRARIES.txt" "$ctx/dist/bundle/lib/"

export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/docker/containers.conf}
podman build -q -f "$ctx/docker/Dockerfile" --target prebuilt \
  --build-arg RUNTIME_BASE="$base" -t "$tag" "$ctx" >/dev/null
rm -f "$out/maskomaly-$variant.oci.tar"
podman save -q --format oci-archive -o "$out/maskomaly-$variant.oci.tar" "$tag"
size=$(podman image inspect --format '{{.Size}}' "$tag")
t1=$(date +%s)
echo "image: $tag, $((size / 1048576)) MiB ($size bytes), built in $((t1 - t0)) s; OCI archive $out/maskomaly-$variant.oci.tar" >&2
