#!/usr/bin/env bash
# Builds every guest of this workspace (SDK examples, bench and test guests)
# for wasm32-wasip2 and copies the components to OUT_DIR (default:
# <repo>/target/guests), where the host's tests and benchmark look for them.
#
#   examples/build.sh [OUT_DIR]
#
# Guests use their own target dir (ARBOR_GUEST_TARGET_DIR, default
# examples/target), never the host's CARGO_TARGET_DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../target/guests}
target=${ARBOR_GUEST_TARGET_DIR:-$here/target}

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
CARGO_TARGET_DIR="$target" cargo build --manifest-path "$here/Cargo.toml" \
    --workspace --target wasm32-wasip2 --release --locked --quiet

mkdir -p "$out"
for f in "$target"/wasm32-wasip2/release/*.wasm; do
    # Copy then rename, so that a test reading the folder never sees half a file.
    tmp="$out/.$(basename "$f").$$"
    cp "$f" "$tmp"
    mv -f "$tmp" "$out/$(basename "$f")"
done
