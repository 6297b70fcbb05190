#!/usr/bin/env bash
# Whether the cuDNN paged SDPA backend is what stalls the few-shot steps:
# `arbor bench few-shot` (cache on and off, via its own report) with
# Arbor's attention-backend mask (the default), with ONNX Runtime's own
# defaults (ARBOR_SDPA_KERNEL=0), and with eager CUDA module loading.
# Needs only the `arbor` binary in .gpu-run/bins.tar.xz; same first call as
# device.sh.
source "$(dirname "$0")/prelude.sh"
timeout 100 arbor bench engine --model $M/l1b --cuda 0 --batch 1,32 --decode-steps 16 --prompt-len 128 2>/dev/null | tail -6
run() {
  echo "== $1"
  shift
  env "$@" timeout 150 arbor bench few-shot --model $M/l1b --cuda 0 --max-batch-tokens 4096 2>&1 | grep -v "^bench: " | tail -8
}
run "arbor's mask (531)"
run "onnx runtime defaults" ARBOR_SDPA_KERNEL=0
ORT_ENABLE_ATTENTION_KERNEL_DEBUG_INFO=1 timeout 150 arbor bench few-shot --model $M/l1b --cuda 0 --max-batch-tokens 4096 --reps 1 2>&1 | grep -o "SdpaKernel=[A-Z_]*\|CudnnPagedGraphCacheHit=[0-9]" | sort | uniq -c
run "arbor's mask, eager module loading" CUDA_MODULE_LOADING=EAGER
