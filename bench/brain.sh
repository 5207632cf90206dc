#!/usr/bin/env bash
# The "real brain MRI" check: `gdl-lab train` with its defaults (and --backend flex) on a T1 brain
# scan with grey/white-matter labels, about 100³. The scan is the MNI ICBM 2009a T1 template and
# its tissue maps as nilearn's wheel on PyPI ships them (no other download); bench/brain.py turns
# them into a 2 mm image and a label map (1 grey matter, 2 white matter). Prints gdl-lab's JSON
# summary (hard Dice per label after the sliding-window prediction) as the last line.
# Extra arguments go to `gdl-lab train`, e.g. --steps 100.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
NILEARN_VERSION=0.14.1
mkdir -p .cache
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import nibabel, numpy" 2>/dev/null; then
  echo "bench/brain.sh: installing numpy and nibabel into bench/.venv from PyPI" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet numpy nibabel
fi
if [ ! -f .cache/brain/mni152_2mm_gm_wm.nii.gz ]; then
  .venv/bin/pip download --quiet --no-deps "nilearn==$NILEARN_VERSION" -d .cache
  rm -rf .cache/mni
  .venv/bin/python -c "
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in wheel.namelist():
        if name.startswith('nilearn/datasets/data/mni_icbm152_') and name.endswith('.nii.gz'):
            wheel.extract(name, '.cache/mni')
" ".cache/nilearn-$NILEARN_VERSION-py3-none-any.whl"
  .venv/bin/python brain.py --data .cache/mni/nilearn/datasets/data --out-dir .cache/brain
fi
cd ..
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gdl-lab/target}"
cargo build --release --locked --quiet
exec "$CARGO_TARGET_DIR/release/gdl-lab" train \
  --image bench/.cache/brain/mni152_2mm_t1.nii.gz --label bench/.cache/brain/mni152_2mm_gm_wm.nii.gz \
  --backend flex --report bench/.cache/brain/run.csv --predict bench/.cache/brain/prediction.nii.gz "$@"
