#!/usr/bin/env bash
# Runs bench/pytorch_step.py in a virtual environment with torch from PyPI (created on first
# use in bench/.venv). Arguments go to the script, e.g.
#   bench/pytorch.sh --model target --size 32 --steps 10
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
TORCH_VERSION="${TORCH_VERSION:-2.15.0}"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "bench/pytorch.sh: creating bench/.venv with torch $TORCH_VERSION from PyPI (large download)" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet "torch==$TORCH_VERSION" numpy
fi
exec .venv/bin/python pytorch_step.py "$@"
