#!/usr/bin/env bash
# The multi-modal, multi-case check (BENCHMARKS.md, "Several cases, four modalities"): six
# phantom cases of 96×96×64 with T1, T1ce, T2 and FLAIR (`gdl-lab phantom --modalities 4`),
# five trained on and the last held out, with the page's default recipe (U-Net, 20 epochs of 25
# steps: 500 steps) on flex; then the same run with T1 with contrast alone (a copy of the set
# holding only the _t1ce images), for comparison. Prints each run's JSON summary (held-out Dice
# per label, its history, the best step) and its last lines on stderr.
# Extra arguments go to both `gdl-lab train` runs, e.g. --epochs 24 or --backend wgpu.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/gdl_lab.sh
source bench/gdl_lab.sh
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$gdl_lab" phantom --modalities 4 --cases 6 --dims 96x96x64 --brats --seed 11 --out "$dir/four" >/dev/null
# The same cases with T1 with contrast alone.
for case in "$dir"/four/case_*; do
  name="$(basename "$case")"
  mkdir -p "$dir/t1ce/$name"
  ln -s "$case/${name}_t1ce.nii.gz" "$case/${name}_seg.nii.gz" "$dir/t1ce/$name/"
done
for set in four t1ce; do
  echo "== $set: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
  "$gdl_lab" train --cases "$dir/$set" "$@" 2>"$dir/$set.log" | tail -n 1
  grep -E "^(epoch|held out)" "$dir/$set.log" | tail -n 4 >&2 || true
done
