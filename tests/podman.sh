#!/usr/bin/env bash
# Container test: the image's runner, run by podman with read-only /input, no network and a
# non-root user, writes the same files as the binary run directly.
#
#   tests/podman.sh            (after `cargo build`; MASKOMALY=path overrides the binary)
#
# Steps: lint docker/Dockerfile (hadolint, when installed); make a local Debian base image with
# mmdebstrap + podman import (cached in $MASKOMALY_CACHE_DIR, default ~/.cache/maskomaly, and in
# podman's store); bundle the locally built binary with docker/bundle.sh; build the Dockerfile's
# `prebuilt` target on that base; generate images and a tiny TorchScript model (`maskomaly demo`);
# run the binary and the container on them and compare every output byte for byte.
# Skips (exit 0) when podman or mmdebstrap is absent. No registry is contacted.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck source=tests/lib.sh
source tests/lib.sh

for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool not installed (scripts/ci-deps.sh installs it)"
done
t0=$(date +%s.%N)

work=$(mktemp -d /tmp/maskomaly-podman.XXXXXX)
cleanup() {
  podman rm -f -i "maskomaly-test-$$" >/dev/null 2>&1 || true
  podman rmi -f "localhost/maskomaly-test:$$" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Engine settings for this host, kept out of /etc.
export CONTAINERS_CONF="$here/docker/containers.conf"

if command -v hadolint >/dev/null 2>&1; then
  hadolint docker/Dockerfile || fail "hadolint found problems in docker/Dockerfile"
  log "hadolint: docker/Dockerfile clean"
else
  log "hadolint not installed: lint skipped"
fi

# Base image: a minimal Debian bookworm, made once and cached.
base_image=$(bash docker/base-image.sh) || fail "cannot make the Debian base image"

exe=$(maskomaly_exe)
mkdir -p "$work/ctx/dist"
# The Dockerfile's context needs docker/ (nothing else is read by the prebuilt target).
cp -r docker "$work/ctx/"
docker/bundle.sh "$exe" "$work/ctx/dist/bundle" 2>>"$work/bundle.log" || fail "bundle failed: $(cat "$work/bundle.log")"
# The system libraries the runtime base lacks travel in the bundle (JPEG inputs need libturbojpeg).
for lib in libhdf5_serial.so.103 libturbojpeg.so.0; do
  [ -f "$work/ctx/dist/bundle/lib/$lib" ] || fail "bundle lacks $lib"
done
podman build -q -f "$work/ctx/docker/Dockerfile" --target prebuilt \
  --build-arg RUNTIME_BASE="$base_image" -t "localhost/maskomaly-test:$$" "$work/ctx" >/dev/null \
  || fail "podman build failed"

make_demo "$exe" "$work/demo"
mkdir -p "$work/direct" "$work/container" "$work/models"
cp "$work/demo/model.pt" "$work/models/model.pt"
"$exe" run --job "$work/demo/job.yaml" --input "$work/demo/images" --output "$work/direct" \
  --checkpoint "$work/demo/model.pt" --device cpu >"$work/direct.log" 2>&1 \
  || fail "direct run failed: $(tail -n 20 "$work/direct.log")"

# The image's user (10001) owns nothing on the host: open the output folder to it.
chmod 0777 "$work/container"
cp "$work/demo/job.yaml" "$work/models/job.yaml"
podman run --rm --network=none --name "maskomaly-test-$$" \
  -v "$work/demo/images:/input:ro" -v "$work/container:/output" -v "$work/models:/models:ro" \
  "localhost/maskomaly-test:$$" --job /models/job.yaml --input /input --output /output \
  --checkpoint /models/model.pt --device cpu \
  >"$work/container.log" 2>&1 || fail "container run failed: $(tail -n 20 "$work/container.log")"

# The container ran as the non-root user and could not write to /input.
uid=$(stat -c %u "$work/container/manifest.json")
[ "$uid" != 0 ] || fail "container wrote its outputs as root"
podman run --rm --network=none -v "$work/demo/images:/input:ro" --entrypoint /bin/sh \
  "localhost/maskomaly-test:$$" -c 'id -u; touch /input/x 2>/dev/null && echo writable || echo read-only' \
  >"$work/probe.log" 2>&1
[ "$(sed -n 1p "$work/probe.log")" = 10001 ] || fail "image user is not 10001: $(cat "$work/probe.log")"
[ "$(sed -n 2p "$work/probe.log")" = read-only ] || fail "/input is writable inside the container"

same_outputs "$work/direct" "$work/container"
"$exe" verify "$work/container" >"$work/verify.log" 2>&1 || fail "verify of the container output failed: $(cat "$work/verify.log")"

t1=$(date +%s.%N)
log "PASS: container output identical to the direct run ($(count_outputs "$work/direct") files, $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s)"
