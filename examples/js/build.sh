#!/usr/bin/env bash
# Builds the JavaScript examples into components:
#
#   examples/js/build.sh OUT_DIR
#
# writes OUT_DIR/js/{few_shot,tree_of_thought,json_extract,bench}.wasm. Needs
# guest-sdk/js/install.sh to have run. Each component is written to a temp
# name and renamed (by guest-sdk/js/build.mjs), so readers never see half a file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 1 ]; then
    echo "usage: examples/js/build.sh OUT_DIR" >&2
    exit 2
fi
mkdir -p "$1/js"
out=$(cd "$1/js" && pwd)
for name in few_shot tree_of_thought json_extract bench; do
    "$here/../../guest-sdk/js/build.sh" "$here/$name.js" "$out/$name.wasm"
done
