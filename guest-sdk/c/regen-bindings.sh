#!/usr/bin/env bash
# Regenerates bindings/program.{c,h} from wit/arbor.wit with wit-bindgen-cli
# 0.63.0 (installed on demand into .tools/, ~8 CPU-minutes once). Run it after
# changing the WIT; build.sh refuses stale bindings, so CI never needs this.
#
#   guest-sdk/c/regen-bindings.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=0.63.0
tools=$here/.tools
if ! "$tools/bin/wit-bindgen" --version 2>/dev/null | grep -q " $version"; then
    # Only the C generator: the default features build every language.
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/arbor-c-tools-target} \
        cargo install --locked --quiet --root "$tools" "wit-bindgen-cli@$version" \
        --no-default-features --features c
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# --no-object-file: the world's type reaches the linker through
# --component-type (see build.sh), so no binary object is committed.
"$tools/bin/wit-bindgen" c "$root/wit" --world program --no-object-file --out-dir "$tmp" >/dev/null 2>&1
# Record which WIT the bindings come from; build.sh compares it.
sum=$(sha256sum "$root/wit/arbor.wit" | cut -d' ' -f1)
for f in program.h program.c; do
    { echo "// wit/arbor.wit sha256: $sum"; cat "$tmp/$f"; } > "$here/bindings/$f"
done
echo "regenerated $here/bindings for wit/arbor.wit $sum"
