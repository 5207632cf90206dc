#!/usr/bin/env bash
# The CPU comparison in one go: gdl-lab flex and gdl-lab wgpu (native; lavapipe where Mesa's
# Vulkan driver is installed, else whatever wgpu finds) against PyTorch eager on the same CPU,
# for the three nets at 16³, 32³ and 64³. Prints the Markdown table BENCHMARKS.md shows.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gdl-lab/target}"
cargo build --release --locked --quiet
exec bench/compare.py --gdl-lab "$CARGO_TARGET_DIR/release/gdl-lab" "$@"
