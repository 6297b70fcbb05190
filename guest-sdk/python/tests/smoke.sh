#!/usr/bin/env bash
# Builds tests/smoke.py and runs it against a model; prints "ok" on success.
#
#   guest-sdk/python/tests/smoke.sh MODEL_DIR [ARBOR_BIN]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model=${1:?usage: smoke.sh MODEL_DIR [ARBOR_BIN]}
arbor=${2:-arbor}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m unittest discover -s "$here" 2>"$tmp/unit" || { cat "$tmp/unit" >&2; exit 1; }
"$here/../build.sh" "$here/smoke.py" "$tmp/smoke.wasm"
out=$("$arbor" run "$tmp/smoke.wasm" --model "$model" --input smoke 2>"$tmp/err") || { cat "$tmp/err" >&2; exit 1; }
[ "$out" = ok ] || { echo "smoke: unexpected output: $out" >&2; cat "$tmp/err" >&2; exit 1; }
echo ok
