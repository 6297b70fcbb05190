#!/usr/bin/env bash
# Builds a Python Arbor program into a WebAssembly component:
#
#   guest-sdk/python/build.sh PROGRAM.py OUT.wasm [MODULE_DIR ...]
#
# PROGRAM.py defines `run(input: str) -> str`; MODULE_DIRs hold extra Python
# modules it imports (bundled whole). Needs install.sh to have run once.
# See tools/build.py and docs/guests-python.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON:-python3}" "$here/tools/build.py" "$@"
