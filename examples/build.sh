#!/usr/bin/env bash
# Builds every guest program: the Rust workspace here (SDK examples, bench
# and test guests) for wasm32-wasip2, copied to OUT_DIR (default:
# <repo>/target/guests), and the Python, JavaScript and C examples into
# OUT_DIR/<language>/, where the host's tests and benchmark look for them.
#
#   examples/build.sh [OUT_DIR]
#
# ARBOR_GUEST_LANGUAGES picks languages (default: "rust python js c"); the
# non-Rust toolchains come from `scripts/setup --tests`
# (guest-sdk/<language>/install.sh).
#
# Guests use their own target dir (ARBOR_GUEST_TARGET_DIR, default
# examples/target), never the host's CARGO_TARGET_DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../target/guests}
target=${ARBOR_GUEST_TARGET_DIR:-$here/target}
languages=${ARBOR_GUEST_LANGUAGES:-rust python js c}
mkdir -p "$out"
out=$(cd "$out" && pwd)

for lang in $languages; do
    case $lang in
        rust) ;;
        python | js | c) "$here/$lang/build.sh" "$out" ;;
        *) echo "examples/build.sh: unknown language $lang" >&2; exit 2 ;;
    esac
done
case " $languages " in
    *" rust "*) ;;
    *) exit 0 ;;
esac

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
