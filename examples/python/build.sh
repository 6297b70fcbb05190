#!/usr/bin/env bash
# Builds the Python examples into OUT_DIR/python/{few_shot,tree_of_thought,
# json_extract,bench}.wasm (default OUT_DIR: <repo>/target/guests).
#
#   examples/python/build.sh [OUT_DIR]
#
# Assumes guest-sdk/python/install.sh has run. The four builds run in
# parallel (each is one mostly single-threaded componentize-py process); each
# component is written under a temporary name and renamed into place.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sdk=$here/../../guest-sdk/python
out=${1:-$here/../../target/guests}/python
mkdir -p "$out"

names=(few_shot tree_of_thought json_extract bench)
pids=()
for n in "${names[@]}"; do
    "$sdk/build.sh" "$here/$n.py" "$out/$n.wasm" &
    pids+=($!)
done
status=0
for i in "${!names[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "examples/python/build.sh: ${names[$i]} failed" >&2
        status=1
    fi
done
exit $status
