#!/usr/bin/env bash
# Builds a JavaScript Arbor program into a WebAssembly component:
#
#   guest-sdk/js/build.sh PROGRAM.js OUT.wasm
#
# PROGRAM.js is an ES module exporting `run(input)`; it imports the SDK as
# 'arbor'. Needs guest-sdk/js/install.sh to have run once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/@bytecodealliance/componentize-js" ]; then
    echo "guest-sdk/js: toolchain missing; run guest-sdk/js/install.sh first" >&2
    exit 1
fi
exec node "$here/build.mjs" "$@"
