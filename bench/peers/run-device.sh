#!/usr/bin/env bash
# The peers on the GPU machine, in two calls (see README.md here and ../../../shared/gpu/README.md):
# the ORT CUDA bundle and the GenAI wheel do not fit one 64 MiB upload, and files under /tmp there survive
# from one call to the next only if the second call comes within 30 s of the first one's return.
#   here, once:  bench/peers/fetch-wheels.sh
#   call 1, carry [".gpu"]:  bash bench/peers/run-device.sh --part 1
#       unpacks the bundle to /tmp/g, makes the random Llama-3.2-1B-shape checkpoint in /tmp/peers/hf,
#       measures the copy bandwidth (bandwidth.py) and transformers (hf_bench.py)
#   call 2, carry [".gpu-peers/part2"], within 30 s:  bash bench/peers/run-device.sh --part 2
#       installs GenAI into /tmp/site, builds its models from /tmp/peers/hf (plain, and paged for og.Engine),
#       runs genai_bench.py through the shim that makes GenAI load the bundle's ONNX Runtime
# Results: $OUT/{gpu.txt,make_model.json,bandwidth.json,hf.json,hf.log,genai.json,genai.log,build*.log}.
# --tiny: the same steps on the CPU with Arbor's tiny shape (no bundle, fp32 GenAI, no paged model) to test
#   this script anywhere (needs torch, transformers and onnxruntime in python3; PEERS_PY=<this python> for
#   fetch-wheels.sh). Extra arguments after the part go to the benchmark (hf_bench.py / genai_bench.py).
# Environment: PEERS_DIR (/tmp/peers), PEERS_TIMEOUT (seconds per benchmark, 480),
#   PEERS_PAGED_OPTIONS (the paged build's --extra_options), PEERS_ENGINE=0 to skip the paged build.
set -uo pipefail
cd "$(dirname "$0")/../.."
part="" tiny=0
while [ $# -gt 0 ]; do
  case "$1" in
    --part) part=$2; shift 2 ;;
    --tiny) tiny=1; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ "$part" = 1 ] || [ "$part" = 2 ] || { echo "usage: run-device.sh --part 1|2 [--tiny] [bench args]"; exit 2; }
export PYTHONUNBUFFERED=1
OUT=${OUT:-$PWD/peers-out}; mkdir -p "$OUT"
D=${PEERS_DIR:-/tmp/peers}; mkdir -p "$D"
T=${PEERS_TIMEOUT:-480}
H=bench/peers
step() { echo "== $(date +%T) $*" >&2; }

if [ "$part" = 1 ]; then
  if [ $tiny = 0 ]; then
    step "unpacking the ORT bundle to /tmp/g"
    mkdir -p /tmp/g && cp .gpu/ort-cuda-sm90.tar.xz .gpu/device-env.sh /tmp/g/ && source /tmp/g/device-env.sh /tmp/g >/dev/null || exit 3
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; python3 --version;
      python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'; } \
      > "$OUT/gpu.txt" 2>&1
    cat "$OUT/gpu.txt" >&2
    dev=cuda; mk=""; bw=""
  else
    dev=cpu; mk="--tiny"; bw="--bandwidth-gbps 1"
  fi
  step "make_model.py"
  python3 $H/make_model.py --out "$D/hf" --device $dev $mk > "$OUT/make_model.json" || exit 4
  cat "$OUT/make_model.json" >&2
  step "bandwidth.py"
  python3 $H/bandwidth.py --model "$D/hf" $bw --out "$OUT/bandwidth.json" > /dev/null
  step "hf_bench.py"
  timeout "$T" python3 $H/hf_bench.py --model "$D/hf" --device $dev ${mk:+--tiny} --out "$OUT/hf.json" "$@" \
    > /dev/null 2> "$OUT/hf.log"
  echo "hf_bench exit $?" >> "$OUT/hf.log"
  grep -v -e Warning -e 'return forward_call' -e '^Loading weights' "$OUT/hf.log" | tail -40 >&2
  step "part 1 done: start part 2 within 30 s"
  exit 0
fi

# part 2
if [ $tiny = 0 ]; then
  [ -f /tmp/g/ortlib/libonnxruntime_providers_cuda.so ] || { echo "no ORT bundle in /tmp/g: run part 1 first (then part 2 within 30 s)"; exit 3; }
  source /tmp/g/device-env.sh /tmp/g >/dev/null
fi
[ -f "$D/hf/config.json" ] || { echo "no checkpoint in $D/hf: run part 1 first"; exit 3; }
step "installing GenAI into /tmp/site"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu-peers/part2/*.whl || exit 4
# The shim: GenAI loads capi/libonnxruntime.so* of the first Python package named onnxruntime.
mkdir -p /tmp/shim/onnxruntime && : > /tmp/shim/onnxruntime/__init__.py
[ $tiny = 0 ] && ln -sfn /tmp/g/ortlib /tmp/shim/onnxruntime/capi

build() {  # build OUTDIR LOG [extra options...]: the machine's onnxruntime serves the builder's quantization imports
  local o=$1 log=$2; shift 2
  local args=(-i "$D/hf" -o "$o" -p fp16 -e cuda)
  [ $tiny = 1 ] && args=(-i "$D/hf" -o "$o" -p fp32 -e cpu)
  [ $# -gt 0 ] && args+=(--extra_options "$@")
  rm -rf "$o"
  PYTHONPATH=/tmp/site python3 -m onnxruntime_genai.models.builder "${args[@]}" > "$log" 2>&1 && return 0
  # Fallback: the machine's onnxruntime package with its libonnxruntime.so replaced by the bundle's.
  echo "== builder failed with the machine's onnxruntime; again with a link farm of it over the bundle" >> "$log"
  local pkg; pkg=$(python3 -c 'import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))') || return 1
  rm -rf /tmp/shim2 && mkdir -p /tmp/shim2/onnxruntime/capi
  for f in "$pkg"/*; do [ "$(basename "$f")" = capi ] || ln -s "$f" /tmp/shim2/onnxruntime/; done
  for f in "$pkg"/capi/*; do
    case "$(basename "$f")" in libonnxruntime.so*) [ $tiny = 1 ] && ln -s "$f" /tmp/shim2/onnxruntime/capi/ ;;
      *) ln -s "$f" /tmp/shim2/onnxruntime/capi/ ;; esac
  done
  [ $tiny = 0 ] && ln -s /tmp/g/ortlib/libonnxruntime.so.* /tmp/shim2/onnxruntime/capi/
  PYTHONPATH=/tmp/shim2:/tmp/site python3 -m onnxruntime_genai.models.builder "${args[@]}" >> "$log" 2>&1
}
step "building the GenAI model ($([ $tiny = 1 ] && echo 'fp32, cpu' || echo 'fp16, cuda'))"
t0=$(date +%s)
build "$D/genai" "$OUT/build.log" || { tail -30 "$OUT/build.log" >&2; exit 5; }
echo "built in $(( $(date +%s) - t0 )) s" >> "$OUT/build.log"
cp "$D/hf/peers_shape.json" "$D/genai/"
engine=()
if [ $tiny = 0 ] && [ "${PEERS_ENGINE:-1}" = 1 ]; then
  step "building the paged GenAI model (og.Engine)"
  # shellcheck disable=SC2086
  if build "$D/genai-paged" "$OUT/build-paged.log" ${PEERS_PAGED_OPTIONS:-use_paged_attention=true paged_block_size=256 max_batch_size=64 max_scheduled_tokens=4096 num_blocks=1024}; then
    cp "$D/hf/peers_shape.json" "$D/genai-paged/"
    engine=(--engine-model "$D/genai-paged")
  else
    tail -20 "$OUT/build-paged.log" >&2
  fi
fi
[ $tiny = 1 ] && engine=(--provider cpu --tiny --engine-prefix-caching as-built)
step "genai_bench.py"
PP=/tmp/site; [ $tiny = 0 ] && PP=/tmp/shim:/tmp/site
PYTHONPATH=$PP timeout "$T" python3 $H/genai_bench.py --model "$D/genai" "${engine[@]}" --out "$OUT/genai.json" "$@" \
  > /dev/null 2> "$OUT/genai.log"
echo "genai_bench exit $?" >> "$OUT/genai.log"
tail -40 "$OUT/genai.log" >&2
step "part 2 done"
