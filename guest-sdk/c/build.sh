#!/usr/bin/env bash
# Builds a C Arbor program into a WebAssembly component:
#
#   guest-sdk/c/build.sh program.c [more.c ...] out.wasm
#
# Compiles the program with the SDK (arbor.c) and the generated bindings
# using Debian's clang for wasm32-wasi, and links with wasm-component-ld, the
# linker that ships with Rust's wasm32-wasip2 target: it runs wasm-ld, embeds
# the `program` world of wit/arbor.wit and applies the WASI preview-1 reactor
# adapter it carries, so no adapter download is needed. install.sh sets up
# what this needs. Extra compiler flags: ARBOR_CFLAGS (default -Os).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 program.c [more.c ...] out.wasm" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
wit=$root/wit/arbor.wit
args=("$@")
out=${args[-1]}
unset 'args[-1]'

# The bindings are generated once and committed; refuse them if the WIT
# changed since (regen-bindings.sh updates them).
want=$(sha256sum "$wit" | cut -d' ' -f1)
have=$(sed -n '1s|^// wit/arbor.wit sha256: ||p' "$here/bindings/program.h")
if [ "$want" != "$have" ]; then
    echo "error: guest-sdk/c/bindings are stale for wit/arbor.wit; run guest-sdk/c/regen-bindings.sh" >&2
    exit 1
fi

cc=${ARBOR_CC:-clang}
ld=${ARBOR_WASM_COMPONENT_LD:-}
if [ -z "$ld" ]; then
    host=$(rustc -vV | sed -n 's/^host: //p')
    ld=$(rustc --print sysroot)/lib/rustlib/$host/bin/wasm-component-ld
fi
if [ ! -x "$ld" ]; then
    echo "error: $ld not found; run guest-sdk/c/install.sh (it needs a Rust toolchain >= 1.82)" >&2
    exit 1
fi
command -v "$cc" >/dev/null || { echo "error: $cc not found; run guest-sdk/c/install.sh" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# -mexec-model=reactor: a library-style module (no main) whose export `run`
# the host calls. --strip-debug drops the DWARF that Debian's wasi-libc
# carries (~90 KB). ${ARBOR_CFLAGS} is split on purpose.
# shellcheck disable=SC2086
"$cc" --target=wasm32-wasi -mexec-model=reactor -std=gnu17 ${ARBOR_CFLAGS:--Os} \
    -Wall -Wextra -Wno-unused-parameter \
    -I "$here" -I "$here/bindings" \
    "$here/arbor.c" "$here/bindings/program.c" "${args[@]}" \
    -fuse-ld="$ld" \
    -Wl,--strip-debug -Wl,--component-type,"$wit" -Wl,--wasi-adapter,reactor \
    -o "$tmp"
# Write under a temporary name, then rename: readers never see half a file.
mv -f "$tmp" "$out"
trap - EXIT
