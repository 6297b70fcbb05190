#!/usr/bin/env bash
# Here (not on the GPU machine), from the project root, once: prepares what run-device.sh's two calls carry.
#   bench/peers/fetch-wheels.sh        # PEERS_PY=3.12 by default: the GPU machine's python3 is 3.12.3
# - .gpu-peers/wheels/ (a download cache, git-ignored, never carried): onnxruntime-genai-cuda 0.18.0 for cp311,
#   cp312 and cp313 (PyPI has no cp310 or abi3 build of it; 16.7 MB each) and onnx-ir 1.1.0 (pure Python).
# - .gpu-peers/part2/ (part 2 carries it, ~17 MB): the cp${PEERS_PY} GenAI wheel and onnx-ir 1.1.0 (the version
#   GenAI's model builder was tested with here; the machine's own is 1.0.0), hard links into the cache.
# - .gpu/ (part 1 carries it, ~57 MB, as ../../../shared/gpu/README.md says): ort-cuda-sm90.tar.xz and
#   device-env.sh, made from ../shared/gpu if missing. Nothing else may go into .gpu/: it would not fit.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PEERS_PY:-3.12}
W=.gpu-peers/wheels P=.gpu-peers/part2
mkdir -p "$W" "$P"
git check-ignore -q "$W" || { echo ".gpu-peers/ is not git-ignored: add /.gpu-peers to .gitignore"; exit 2; }
dl() {  # dl PYVER SPEC
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$1" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$W" "$2"
}
for v in 3.11 3.12 3.13; do
  ls "$W"/onnxruntime_genai_cuda-0.18.0-cp${v/./}-*.whl >/dev/null 2>&1 || dl "$v" onnxruntime-genai-cuda==0.18.0
done
ls "$W"/onnx_ir-1.1.0-*.whl >/dev/null 2>&1 || dl "$PY" onnx-ir==1.1.0
rm -f "$P"/*.whl
ln -f "$W"/onnxruntime_genai_cuda-0.18.0-cp${PY/./}-*.whl "$W"/onnx_ir-1.1.0-*.whl "$P"/

if [ ! -f .gpu/ort-cuda-sm90.tar.xz ]; then
  [ -x ../shared/gpu/make-ort-cuda-bundle.sh ] || { echo "no .gpu/ort-cuda-sm90.tar.xz and no ../shared/gpu"; exit 2; }
  ../shared/gpu/make-ort-cuda-bundle.sh .gpu
fi
[ -f .gpu/device-env.sh ] || cp ../shared/gpu/device-env.sh .gpu/
du -sh .gpu "$P"
ls -l "$P"
