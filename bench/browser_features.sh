#!/usr/bin/env bash
# The browser build's kernels natively: builds gdl-lab a second time with the burn features the
# wasm worker gets (Cargo.toml's wasm32 `burn` line: no autotuning), then times training steps
# with it and with the usual native build (autotuned), one after the other on the same adapter,
# and prints a Markdown table with their ratio. Issue 12 asks for ≤ 1.5×.
#
#   bench/browser_features.sh            # the machine's default Vulkan adapter
#   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json CUBECL_AUTOTUNE_LEVEL=minimal \
#     ROWS=simple:16,target:32,unet:32 bench/browser_features.sh     # lavapipe, no GPU
#
# The second build is a second build of burn (~25 minutes on 2 cores, cold), in its own copy of
# the tracked tree under $WORK, sharing the usual target directory so that nothing else rebuilds.
# Not part of the tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${WORK:-/tmp/gdl-lab-browser-features}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gdl-lab/target}"
ROWS="${ROWS:-simple:16,simple:32,target:16,target:32,unet:16,unet:32}"
STEPS="${STEPS:-5}"

# The copy: tracked files as they are in the working tree, with the native `burn` dependency
# given the wasm one's features.
rm -rf "$WORK" && mkdir -p "$WORK"
git -C "$root" ls-files -z | (cd "$root" && xargs -0 tar -c) | tar -x -C "$WORK"
# Newer than any earlier build of the copy: cargo's fingerprint follows the files it read then,
# whose paths may have been another copy's.
find "$WORK" -type f -exec touch {} +
python3 - "$WORK/Cargo.toml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
wasm = re.search(r'^burn = \{ version = "=0\.22\.1", default-features = false, features = (\[[^\]]*\]), optional = true \}$', text, re.M)
native = re.search(r'^burn = \{ version = "=0\.22\.1", features = \[[^\]]*\] \}$', text, re.M)
if not wasm or not native:
    sys.exit("browser_features.sh: Cargo.toml's burn lines have changed; update this script")
text = text.replace(native.group(0), f'burn = {{ version = "=0.22.1", default-features = false, features = {wasm.group(1)} }}')
open(path, "w").write(text)
PY
grep -n '^burn = ' "$WORK/Cargo.toml" >&2

(cd "$root" && cargo build --release --locked --quiet)
cp "$CARGO_TARGET_DIR/release/gdl-lab" "$WORK/gdl-lab-native"
(cd "$WORK" && cargo build --release --quiet)
cp "$CARGO_TARGET_DIR/release/gdl-lab" "$WORK/gdl-lab-browser-features"

median() { python3 -c 'import json,sys; print(round(json.loads(sys.stdin.read().strip().splitlines()[-1])["median_step_s"]*1000))'; }
first() { python3 -c 'import json,sys; r=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(round(r["first_step_s"], 1))'; }

echo "| net | size | native, autotuned (ms) | browser features (ms) | ratio | first step, native / browser features (s) |"
echo "|---|---|---|---|---|---|"
for row in ${ROWS//,/ }; do
  model="${row%%:*}"; size="${row##*:}"
  args=(bench --backend wgpu --model "$model" --size "$size" --steps "$STEPS")
  native="$("$WORK/gdl-lab-native" "${args[@]}" 2>/dev/null)"
  browser="$("$WORK/gdl-lab-browser-features" "${args[@]}" 2>/dev/null)"
  a="$(median <<<"$native")"; b="$(median <<<"$browser")"
  echo "| $model | ${size}³ | $a | $b | $(python3 -c "print(f'{$b/$a:.2f}×')") | $(first <<<"$native") / $(first <<<"$browser") |"
done
