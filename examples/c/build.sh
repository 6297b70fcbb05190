#!/usr/bin/env bash
# Builds the C examples into OUT_DIR/c/{few_shot,tree_of_thought,json_extract,bench}.wasm.
#
#   examples/c/build.sh OUT_DIR
#
# Assumes guest-sdk/c/install.sh ran. Each component is written under a
# temporary name and renamed (guest-sdk/c/build.sh does that).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: examples/c/build.sh OUT_DIR}
mkdir -p "$out/c"
for p in few_shot tree_of_thought json_extract bench; do
    "$here/../../guest-sdk/c/build.sh" "$here/$p.c" "$out/c/$p.wasm"
done
