#!/usr/bin/env bash
# Installs the JavaScript guest toolchain: componentize-js 0.23.0 and esbuild,
# at the exact versions of package.json / package-lock.json, into
# guest-sdk/js/node_modules. Needs Node.js 20 or newer with npm (Debian
# bookworm's own nodejs is 18; when node is missing altogether this tries
# it anyway and says so if it is too old).
#
# Idempotent: prints nothing and takes well under a second when the same
# lock file is already installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "guest-sdk/js: installing Debian's nodejs and npm" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq nodejs npm >/dev/null
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
    echo "guest-sdk/js: Node.js $(node --version) is too old; componentize-js's dependencies need Node.js 20 or newer" >&2
    exit 1
fi

# The stamp records which lock file (and Node.js) node_modules came from.
stamp="$here/node_modules/.arbor-install-stamp"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1) node-$major"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && [ -d "$here/node_modules/@bytecodealliance/componentize-js" ]; then
    exit 0
fi
# --ignore-scripts: no package needs an install script (esbuild's only checks
# the binary its platform package already ships), and none should run.
(cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
echo "$want" > "$stamp"
