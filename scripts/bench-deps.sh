#!/usr/bin/env bash
# Python packages the benchmarks compare against (never needed by the program or its tests):
# numpy 1.24.2 + scikit-learn 1.2.1 (the reference's versions) into .deps/pybench. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.deps/pybench
if [ ! -f "$dir/.done" ]; then
  echo "bench: installing numpy and scikit-learn into $dir" >&2
  python3 -m pip install -q --no-compile --target "$dir" numpy==1.24.2 scikit-learn==1.2.1 'scipy<1.12'
  touch "$dir/.done"
fi
