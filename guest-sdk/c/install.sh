#!/usr/bin/env bash
# Installs what guest-sdk/c/build.sh needs on Debian bookworm (idempotent;
# quiet when everything is there):
#
#   guest-sdk/c/install.sh
#
# - from apt: clang and lld 14, wasi-libc and the wasm32 compiler-rt
#   builtins (bookworm: 1:14.0-55.7~deb12u1 and 0.0~git20220510.9886d3d-2),
#   installed only when missing (about 10 s);
# - from the Rust toolchain already there: wasm-component-ld, the linker of
#   Rust's wasm32-wasip2 target. It ships inside rustc (1.82 or newer) and
#   carries the WASI preview-1 adapter, so no cargo install and no adapter
#   download are needed.
#
# The bindings are committed (guest-sdk/c/bindings); only changing the WIT
# needs wit-bindgen-cli, which regen-bindings.sh installs on demand.
set -euo pipefail

pkgs=(clang lld wasi-libc libclang-rt-dev-wasm32)
missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

host=$(rustc -vV | sed -n 's/^host: //p')
ld=$(rustc --print sysroot)/lib/rustlib/$host/bin/wasm-component-ld
if [ ! -x "$ld" ]; then
    echo "error: $ld is missing: the Rust toolchain is too old (wasm-component-ld ships with rustc 1.82+)" >&2
    exit 1
fi
