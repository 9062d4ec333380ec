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
# The model benchmark compares with Hugging Face transformers on torch (the full CUDA wheel set,
# several GB; only `make bench` installs it).
mdir=.deps/pybench-model
if [ ! -f "$mdir/.done" ]; then
  echo "bench: installing torch 2.11.0, transformers and scipy into $mdir" >&2
  python3 -m pip install -q --no-compile --target "$mdir" torch==2.11.0 transformers==5.24.0 scipy
  touch "$mdir/.done"
fi
# GNU time (`/usr/bin/time -v`: peak RSS and file-system writes) for the scale benchmark.
if [ ! -x /usr/bin/time ]; then
  echo "bench: installing GNU time (Debian package time)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q time; else sudo apt-get install -y -q time; fi
fi
