#!/usr/bin/env bash
# Region outputs on held-out data (BraTS's WT, TC and ET, a sigmoid each; BENCHMARKS.md, "Region
# outputs"): the six four-modality phantom cases of bench/cases.sh (96×96×64, the last held out),
# the page's default recipe with `--targets regions --warmup bce` (BCE on the regions, then the
# GDL with a sigmoid per region), then the same run with the lab's cause "softmax over
# overlapping regions" (`--misuse softmax_over_regions`: the GDL's probabilities by a softmax
# over the three regions, and the prediction too). Prints each run's JSON summary (held-out Dice
# per region) and its last lines on stderr. Extra arguments go to both runs, e.g. --epochs 8.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/gdl_lab.sh
source bench/gdl_lab.sh
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$gdl_lab" phantom --modalities 4 --cases 6 --dims 96x96x64 --brats --seed 11 --out "$dir/four" >/dev/null
echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
for run in sigmoid softmax; do
  extra=()
  [ "$run" = softmax ] && extra=(--misuse softmax_over_regions)
  echo "== regions, $run" >&2
  "$gdl_lab" train --cases "$dir/four" --targets regions --warmup bce "${extra[@]}" "$@" \
    2>"$dir/$run.log" | tail -n 1
  grep -E "^(epoch|held out)" "$dir/$run.log" | tail -n 4 >&2 || true
done
