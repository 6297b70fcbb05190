#!/usr/bin/env bash
# Where the paged graph's attention time goes on the real path: decode over
# long distinct histories (bench engine) against decode over one shared
# prefix (bench few-shot), with ONNX Runtime's attention backend choice
# printed per node, and the few-shot workload's slowest forward passes node
# by node (`diag.sh fewshot`: only those). Same carry and first call as device.sh.
source "$(dirname "$0")/prelude.sh"
if [ "${1:-}" != fewshot ]; then
for sh in 0 1024; do
  echo "history 1056, shared $sh:"
  timeout 100 arbor bench engine --model $M/l1b --cuda 0 --batch 8,64 --history 1056 --shared-history $sh --decode-steps 16 --prompt-len 128 2>&1 | grep "decode batch"
done
ORT_ENABLE_ATTENTION_KERNEL_DEBUG_INFO=1 timeout 100 arbor bench engine --model $M/l1b --cuda 0 --batch 64 --history 1056 --shared-history 1024 --decode-steps 4 --reps 1 --prompt-len 128 2>&1 | grep -o "SdpaKernel=[A-Z_]* NumSplits=[0-9]*" | sort | uniq -c
fi
rm -f /tmp/ortprof*; ARBOR_ORT_PROFILE=/tmp/ortprof timeout 120 arbor bench few-shot --model $M/l1b --cuda 0 --max-batch-tokens 4096 --reps 1 2>/dev/null | tail -1
python3 bench/gpu/ort_profile.py /tmp/ortprof*.json
