#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: gdl-lab wgpu (Vulkan) against PyTorch CUDA for the three
# nets at 32³ and 64³, in one go, printing the ratios. Needs Rust, Python 3 and the NVIDIA driver
# with its Vulkan ICD; torch comes from PyPI into bench/.venv on first use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gdl-lab/target}"
cargo build --release --locked --quiet
exec bench/compare.py --gdl-lab "$CARGO_TARGET_DIR/release/gdl-lab" --backends wgpu \
  --sizes "${SIZES:-32,64}" --torch-device cuda "$@"
