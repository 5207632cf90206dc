#!/usr/bin/env bash
# What a four-channel step costs against a one-channel step (BENCHMARKS.md, "What a
# four-channel step costs"): `gdl-lab bench --size 32 --channels C` for each net, C = 1 and 4
# alternating ROUNDS times (default 5) in one run, so that both see the same machine state; prints
# each net's medians and the ratio of the medians, and each round's ratio.
# GDL_LAB=path/to/gdl-lab uses that binary; PROFILE=dev the dev build that `./x test` leaves.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/gdl_lab.sh
source bench/gdl_lab.sh
rounds="${ROUNDS:-5}"
grep -m1 "model name" /proc/cpuinfo || true
for model in simple target unet; do
  for round in $(seq "$rounds"); do
    for channels in 1 4; do
      "$gdl_lab" bench --model "$model" --size 32 --steps 30 --channels "$channels" 2>/dev/null
    done
  done | python3 -c '
import json, statistics, sys
rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
one = [r["median_step_s"] for r in rows if r["channels"] == 1]
four = [r["median_step_s"] for r in rows if r["channels"] == 4]
model = rows[0]["model"]
rounds = ", ".join(f"{b / a:.3f}" for a, b in zip(one, four))
print(f"{model}: 1 channel {statistics.median(one):.4f} s, 4 channels "
      f"{statistics.median(four):.4f} s, ratio of medians {statistics.median(four) / statistics.median(one):.3f} "
      f"(each round: {rounds})")
'
done
