#!/usr/bin/env bash
# gdl-lab wgpu (Vulkan) against PyTorch CUDA (with and without cudnn.benchmark) on an NVIDIA
# GPU, in one go: the table of BENCHMARKS.md's "GPU" section with gdl-lab's tiled kernels (the
# default on a GPU); burn's own conv3d on two rows (the issue's before-numbers); the host's cost
# per kernel launch (8³ steps of FLOOR_MODELS); the tiled kernels' tile sizes compared
# (bench/tiles.py), so that one run can choose better defaults; and per-kernel GPU profiles of
# Target 64³ steps with each convolution and with the two kernel variants. About 10 minutes on
# an H200, estimated (each cell is a new process that compiles its shaders; a cell that takes
# over RUN_TIMEOUT seconds says so); ROWS=net:size,…, CONVS=tiled,burn,gemm, BURN_ROWS,
# TILE_ROWS and TILES ("a;b;…", bench/tiles.py --tiles) choose less or more.
#
# Two ways to run it:
#   - on a machine with Rust: `bench/gpu.sh` builds the release binary itself;
#   - on the lent GPU machine (no Rust, no network): `./x gpu-pack` here first (release binary,
#     stripped and gzipped, and the Vulkan loader's .deb files, into .gpu-bench/), then in one
#     `device` call that carries .gpu-bench: `bench/gpu.sh`.
# PyTorch: the machine's python3 when it has torch, else bench/pytorch.sh's venv.
# Results go to stdout and, when set, to $OUT (profiles, logs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
PACK=.gpu-bench

if [ -n "${GDL_LAB:-}" ]; then
  BIN="$GDL_LAB"
elif [ -f "$PACK/gdl-lab.gz" ]; then
  BIN=/tmp/gdl-lab
  gunzip -c "$PACK/gdl-lab.gz" >"$BIN"
  chmod +x "$BIN"
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gdl-lab/target}"
  cargo build --release --locked --quiet
  BIN="$CARGO_TARGET_DIR/release/gdl-lab"
fi

# NVIDIA's container images ship the driver's Vulkan ICD but no loader.
if ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
  ls "$PACK"/*.deb >/dev/null 2>&1 || { echo "gpu.sh: no Vulkan loader here and no $PACK/*.deb (./x gpu-pack)" >&2; exit 1; }
  for deb in "$PACK"/*.deb; do dpkg -x "$deb" /; done
  ldconfig
fi
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$ICD" ] && export VK_DRIVER_FILES="$ICD"

PYTHON=()
python3 -c 'import torch' 2>/dev/null && PYTHON=(--python python3)

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$BIN" doctor 2>&1 | tail -n 6

# CubeCL reads cubecl.toml from the working directory: kernel timings only, to stderr (the
# environment variables would also dump every compiled shader).
PROFILE_DIR="$(mktemp -d)"
printf '[profiling.logger]\nlevel = "basic"\nstderr = true\n' >"$PROFILE_DIR/cubecl.toml"

echo
echo "## gdl-lab against PyTorch (--conv tiled: gdl-lab's kernels, the default)"
bench/compare.py --gdl-lab "$BIN" --backends wgpu --convs "${CONVS:-tiled}" --torch-device cuda \
  --cudnn-benchmark "${PYTHON[@]}" --timeout "${RUN_TIMEOUT:-60}" \
  --rows "${ROWS:-simple:32,simple:64,target:32,target:64,target:96,target:128,unet:32,unet:64,unet:96,unet:128}"

echo
echo "## burn's conv3d (--conv burn), as issue 12 measured it"
bench/compare.py --gdl-lab "$BIN" --backends wgpu --convs burn --torch-device none \
  --timeout "${RUN_TIMEOUT:-60}" --rows "${BURN_ROWS:-target:64,unet:64}"

echo
echo "## The host's share: 8³ steps, where the GPU has almost nothing to do"
# The step time over the launches a step makes (counted by CubeCL's profiler in a second run)
# bounds what one launch costs the host: autodiff, fusion, CubeCL and wgpu on this CPU.
echo "| net | ms / step at 8³ | launches / step | µs per launch, at most |"
echo "|---|---|---|---|"
for model in ${FLOOR_MODELS:-simple target unet}; do
  step_ms=$(timeout 60 "$BIN" bench --backend wgpu --model "$model" --size 8 --steps 20 2>/dev/null |
    tail -n 1 | python3 -c 'import json, sys; print(round(json.load(sys.stdin)["median_step_s"] * 1000, 2))') ||
    step_ms="failed"
  log="$OUT/profile-$model-8.log"
  (cd "$PROFILE_DIR" && timeout 60 "$BIN" bench --backend wgpu --model "$model" --size 8 --steps 3 \
    >/dev/null 2>"$log") || true
  read -r _ launches < <(python3 bench/profile_summary.py "$log" --brief) || launches="?"
  per_launch=$(python3 -c "print(round(1000 * $step_ms / $launches))" 2>/dev/null) || per_launch="?"
  echo "| $model | $step_ms | $launches | $per_launch |"
done

echo
echo "## Tile sizes of the tiled kernels (bench/tiles.py: one process per net, the defaults first)"
python3 bench/tiles.py --gdl-lab "$BIN" --rows "${TILE_ROWS:-target:64,unet:64}" \
  ${TILES:+--tiles "$TILES"} --timeout 200 || echo "tiles.py failed"

echo
echo "## The tuning pass (gdl-lab bench --tune): what the page and train choose on this GPU"
# Each row: the pass's sentence (the default's and the chosen kernels' median steps), then the
# chosen kernels timed again by the same process, 10 steps.
for row in ${TUNE_ROWS:-target:32 target:64 unet:64}; do
  model=${row%%:*} size=${row##*:}
  GDL_LAB_CACHE="$(mktemp -d)" timeout 300 "$BIN" bench --backend wgpu --model "$model" \
    --size "$size" --steps 10 --tune 2>/dev/null | tail -n 1 | python3 -c "
import json, sys
s = json.loads(sys.stdin.read()); t = s['tuning']
print(f\"- $model ${size}³: {t['sentence']}; then {s['median_step_s'] * 1000:.1f} ms/step\")
" || echo "- $model ${size}³: the tuning pass failed"
done

echo
echo "## Per-kernel GPU time of Target 64³ steps (CubeCL's profiler; logs in \$OUT)"
# The tiled kernels with their defaults, with the two variants for a GPU's memory (kernel by
# kernel: which of forward/forward_columns and weight_grad/weight_grad_lanes is faster on which
# layer), and burn's conv3d.
for run in "tiled defaults" "tiled along=y,weight_grad=lanes" "burn defaults"; do
  read -r conv tiles <<<"$run"
  [ "$tiles" = defaults ] && tiles=""
  log="$OUT/profile-target64-$conv${tiles:+-variants}.log"
  (cd "$PROFILE_DIR" && timeout 60 "$BIN" bench --model target --size 64 --steps 2 --warmup 2 \
    --backend wgpu --conv "$conv" --tiles "$tiles" >/dev/null 2>"$log") ||
    echo "profile with --conv $conv ${tiles:+--tiles $tiles }failed or timed out"
  python3 bench/profile_summary.py "$log" --title "Target 64³, --conv $conv${tiles:+ --tiles $tiles}" || true
done
