#!/usr/bin/env bash
# Installs the Python guest toolchain (componentize-py, pinned in
# requirements.txt) into guest-sdk/python/.deps. Idempotent and quiet when
# already installed. Needs CPython >= 3.9 with pip; nothing else (the
# Python that runs inside components ships with componentize-py).
#
# `pip install --target` keeps the toolchain inside this folder: no venv
# package (Debian's python3-venv) is needed, and Debian's "externally
# managed environment" refusal does not apply to a target folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
deps=$here/.deps
stamp=$deps/.installed

# The stamp holds the requirements it was installed from; any change to
# requirements.txt reinstalls.
if [ -f "$stamp" ] && cmp -s "$stamp" "$here/requirements.txt"; then
    exit 0
fi
echo "install.sh: installing $(grep -v '^#' "$here/requirements.txt" | tr '\n' ' ')into $deps"
rm -rf "$deps"
"$py" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --root-user-action=ignore --target "$deps" --requirement "$here/requirements.txt"
cp "$here/requirements.txt" "$stamp"
