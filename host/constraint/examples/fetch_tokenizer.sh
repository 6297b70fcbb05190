#!/usr/bin/env bash
# Fetches a real 65k-token byte-level BPE tokenizer.json for the mask benchmark
# from a PyPI wheel that bundles it (the anthropic SDK shipped one up to
# 0.3x), since model hubs are out of reach. Prints the file's path.
#
#   cargo run --release -p arbor-constraint --example mask_bench -- "$(host/constraint/examples/fetch_tokenizer.sh)"
set -euo pipefail
dir="${1:-${TMPDIR:-/tmp}/arbor-tokenizer}"
out="$dir/tokenizer.json"
if [[ ! -s "$out" ]]; then
  mkdir -p "$dir"
  python3 -m pip download --quiet --no-deps anthropic==0.30.0 -d "$dir" >&2
  python3 - "$dir" <<'PY'
import glob, sys, zipfile
d = sys.argv[1]
wheel = glob.glob(f"{d}/anthropic-0.30.0-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(f"{d}/tokenizer.json", "wb") as f:
    f.write(z.read("anthropic/tokenizer.json"))
PY
fi
echo "$out"
