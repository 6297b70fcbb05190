#!/usr/bin/env bash
# Checks the C SDK's JSON reader and writer, trim, split and {:?} against
# serde_json 1.0.154 and Rust's std on ~3,800 generated cases; prints
# "identical" or the differing lines and exits 1. Needs cargo (crates.io or
# its cache), python3 and a native C compiler (gcc with ASan/UBSan if it
# has them).
#
#   guest-sdk/c/tests/serde-compare/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sdk=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/gen.py" "$work/cases.bin"
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$work/target} cargo run --quiet --release --locked \
    --manifest-path "$here/Cargo.toml" < "$work/cases.bin" > "$work/rust.txt"
cc=${CC:-cc}
flags=(-O1 -g -fno-pie -no-pie -I "$sdk" -I "$sdk/bindings" -Wl,--unresolved-symbols=ignore-all)
if echo 'int main(void){return 0;}' | "$cc" -fsanitize=address,undefined -x c - -o "$work/probe" 2>/dev/null; then
    flags+=(-fsanitize=address,undefined)
fi
"$cc" "${flags[@]}" "$here/harness.c" "$sdk/arbor.c" "$sdk/bindings/program.c" -o "$work/harness" 2>/dev/null
"$work/harness" < "$work/cases.bin" > "$work/c.txt"
if diff "$work/rust.txt" "$work/c.txt" > "$work/diff.txt"; then
    echo "identical ($(wc -l < "$work/rust.txt") lines)"
else
    head -40 "$work/diff.txt"
    exit 1
fi
