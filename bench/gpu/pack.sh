#!/usr/bin/env bash
# Packs what a GPU run of Arbor needs into .gpu-run/ (git-ignored): the
# `arbor` binary, the CUDA test binaries (reference, half) and a few guest
# programs, stripped and xz-compressed to fit the device machine's upload
# limit beside nothing else. The ORT CUDA bundle travels in a call of its own
# (../shared/gpu/README.md, "Two calls"). Run from the project root.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -p arbor
cargo test -p arbor-tests --no-run 2>&1 | tee /tmp/pack-tests.log >/dev/null
cargo test -p arbor --test run --no-run 2>&1 | tee -a /tmp/pack-tests.log >/dev/null
rm -rf .gpu-run && mkdir -p .gpu-run/stage
bin() { grep -o "target/debug/deps/$1-[0-9a-f]*" /tmp/pack-tests.log | tail -1; }
cp target/debug/arbor .gpu-run/stage/arbor
cp "$(bin reference)" .gpu-run/stage/reference
cp "$(bin half)" .gpu-run/stage/half
cp "$(bin run)" .gpu-run/stage/run-test
strip .gpu-run/stage/*
mkdir -p .gpu-run/stage/guests
cp target/guests/{few_shot,tree_of_thought,react_agent,judge,json_extract}.wasm .gpu-run/stage/guests/
tar -C .gpu-run/stage -cf - . | xz -T2 -6 > .gpu-run/bins.tar.xz
rm -rf .gpu-run/stage
ls -l .gpu-run/bins.tar.xz
