#!/usr/bin/env bash
# The GPU image, proven on a machine without a GPU (make test-image-cuda; too heavy for every CI
# run: about 10 min and 12 GB of disk the first time, see the README):
#   1. builds localhost/maskomaly:cuda offline (scripts/image.sh cuda);
#   2. every library in the image resolves inside it (ldd), except the driver's libcuda.so.1,
#      which the NVIDIA container toolkit passes in from the host;
#   3. the runner's own probe (`maskomaly info`) loads libtorch's CUDA half inside the image;
#   4. `--version` answers, and a `--device cpu` demo run in the image writes the same bytes as the
#      same binary run directly;
#   5. `--device cuda` without a GPU fails with one clear line and exit 78 (configuration: a
#      scheduler must not retry it);
#   6. Apptainer / SingularityCE, where installed, builds a SIF from the image's OCI archive and
#      runs the same check; they are in neither Debian bookworm's nor PyPI's packages, so this
#      step says so and skips where they are absent.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck source=tests/lib.sh
source tests/lib.sh

for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool not installed (scripts/ci-deps.sh installs it)"
done
export CONTAINERS_CONF="$here/docker/containers.conf"
t0=$(date +%s)
tag=localhost/maskomaly:cuda-test-$$
work=$(mktemp -d /tmp/maskomaly-image-cuda.XXXXXX)
cleanup() {
  podman rmi -f "$tag" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

df_before=$(df -B1 --output=avail / | tail -1)
bash scripts/image.sh cuda "$tag" 2>"$work/build.log" || fail "image build failed: $(tail -n 30 "$work/build.log")"
grep '^image:' "$work/build.log" >&2
t_build=$(date +%s)

in_image() {
  podman run --rm --network=none --entrypoint /bin/sh "$tag" -c "$1"
}

# 2. Every library resolves inside the image.
in_image 'for f in /opt/maskomaly/bin/maskomaly /opt/maskomaly/lib/*.so*; do ldd "$f" | sed "s|^|$f: |"; done' \
  >"$work/ldd.txt" 2>&1 || fail "ldd inside the image failed: $(tail "$work/ldd.txt")"
missing=$(grep "not found" "$work/ldd.txt" | grep -v "libcuda.so.1 => not found" || true)
[ -z "$missing" ] || fail "libraries missing inside the image:
$missing"
for lib in libtorch_cuda.so libcudnn.so.9 libcudnn_engines_precompiled.so.9 libcublasLt.so.13 libnvrtc.so.13; do
  grep -q "^/opt/maskomaly/lib/$lib:" "$work/ldd.txt" || fail "$lib is not in the image"
done
log "ldd: every library of the image resolves ($(grep -c ': ' "$work/ldd.txt") lines; libcuda.so.1 comes from the host)"

# 3. The runner's probe loads the CUDA half and sees no device here.
podman run --rm --network=none --entrypoint maskomaly "$tag" info >"$work/info.txt" 2>&1 \
  || fail "maskomaly info failed: $(cat "$work/info.txt")"
grep -q '^cuda support: loaded from' "$work/info.txt" || fail "libtorch_cuda did not load in the image: $(cat "$work/info.txt")"
grep -q '^cuda devices: 0$' "$work/info.txt" || fail "unexpected device count: $(cat "$work/info.txt")"
log "probe: $(grep '^cuda support' "$work/info.txt")"

# 4. --version, and a CPU demo run identical to the direct run.
version=$(podman run --rm --network=none --entrypoint maskomaly "$tag" --version)
[ "$version" = "$(target/release/maskomaly --version)" ] || fail "--version in the image: $version"
exe=${CARGO_TARGET_DIR:-$here/target}/release/maskomaly
make_demo "$exe" "$work/demo"
mkdir -p "$work/direct" "$work/container" "$work/models"
cp "$work/demo/model.pt" "$work/demo/job.yaml" "$work/models/"
"$exe" run --job "$work/demo/job.yaml" --input "$work/demo/images" --output "$work/direct" \
  --checkpoint "$work/demo/model.pt" --device cpu >"$work/direct.log" 2>&1 \
  || fail "direct run failed: $(tail -n 20 "$work/direct.log")"
chmod 0777 "$work/container"
podman run --rm --network=none -v "$work/demo/images:/input:ro" -v "$work/container:/output" \
  -v "$work/models:/models:ro" "$tag" --job /models/job.yaml --input /input --output /output \
  --checkpoint /models/model.pt --device cpu >"$work/container.log" 2>&1 \
  || fail "container run failed: $(tail -n 20 "$work/container.log")"
same_outputs "$work/direct" "$work/container"
log "cpu run in the image: $(count_outputs "$work/direct") files identical to the direct run"

# 5. --device cuda without a GPU: one line, exit 78.
set +e
podman run --rm --network=none -v "$work/demo/images:/input:ro" -v "$work/models:/models:ro" "$tag" \
  --job /models/job.yaml --input /input --output /tmp/out --checkpoint /models/model.pt --device cuda \
  >"$work/cuda.out" 2>"$work/cuda.err"
rc=$?
set -e
[ "$rc" = 78 ] || fail "--device cuda without a GPU exited $rc, expected 78: $(cat "$work/cuda.err")"
lines=$(grep -c . "$work/cuda.err")
[ "$lines" = 1 ] || fail "--device cuda without a GPU printed $lines lines, expected 1: $(cat "$work/cuda.err")"
grep -q 'no GPU is visible' "$work/cuda.err" || fail "unclear message: $(cat "$work/cuda.err")"
log "no GPU: exit 78, \"$(cat "$work/cuda.err")\""

# 6. Apptainer / SingularityCE.
sif_tool=$(command -v apptainer || command -v singularity || true)
if [ -n "$sif_tool" ]; then
  "$sif_tool" build "$work/maskomaly.sif" "oci-archive://$here/target/image/maskomaly-cuda.oci.tar" \
    >"$work/sif.log" 2>&1 || fail "$sif_tool build failed: $(tail "$work/sif.log")"
  "$sif_tool" exec "$work/maskomaly.sif" maskomaly info | grep -q '^cuda support: loaded' \
    || fail "the SIF does not load libtorch_cuda"
  log "$(basename "$sif_tool"): SIF built from the OCI archive and probed"
else
  log "apptainer / singularity: not installed, and not packaged in Debian bookworm or on PyPI: SIF step skipped"
fi

df_after=$(df -B1 --output=avail / | tail -1)
t1=$(date +%s)
log "PASS: GPU image built in $((t_build - t0)) s, checks $((t1 - t_build)) s; disk used by the build: $(((df_before - df_after) / 1048576)) MiB (image, OCI archive, caches)"
