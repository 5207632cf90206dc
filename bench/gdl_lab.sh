# Sourced by the bench scripts: builds gdl-lab and sets `gdl_lab` to the binary to time.
# GDL_LAB=path/to/gdl-lab uses that binary; PROFILE=dev the dev build that `./x test` leaves
# (burn at opt-level 2, gdl-lab's own code unoptimised); by default the release build, what users
# get (~30 min cold).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gdl-lab/target}"
if [ -n "${GDL_LAB:-}" ]; then
  gdl_lab="$GDL_LAB"
elif [ "${PROFILE:-release}" = dev ]; then
  cargo build --locked --quiet
  gdl_lab="$CARGO_TARGET_DIR/debug/gdl-lab"
else
  cargo build --release --locked --quiet
  gdl_lab="$CARGO_TARGET_DIR/release/gdl-lab"
fi
