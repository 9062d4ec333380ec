#!/usr/bin/env bash
# Python packages the benchmarks compare against (never needed by the program or its tests):
# numpy + scikit-learn 1.2-compatible metrics into .deps/pybench. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.deps/pybench
if [ ! -f "$dir/.done" ]; then
  echo "bench: installing numpy and scikit-learn into $dir" >&2
  python3 -m pip install -q --no-compile --target "$dir" numpy scikit-learn
  touch "$dir/.done"
fi
