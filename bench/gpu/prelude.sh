# Sourced by the bench/gpu scripts that run the 1B shape on the device: the
# ORT bundle's paths (unpacked to /tmp/g by the first call), the carried
# binaries unpacked onto PATH, and the random-weight Llama-3.2-1B-shaped
# model in $M/l1b, made there once per machine (weights are not carried).
set -uo pipefail
source /tmp/g/device-env.sh /tmp/g >/dev/null || exit 3
A=/tmp/arbor; rm -rf $A; mkdir -p $A && xz -dc .gpu-run/bins.tar.xz | tar -x -C $A
export PATH=$A:$PATH
M=/tmp/models; mkdir -p $M
[ -f $M/l1b/arbor.json ] || arbor export --random llama-3.2-1b --out $M/l1b >/dev/null 2>&1
