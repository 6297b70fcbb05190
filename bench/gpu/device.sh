#!/usr/bin/env bash
# Arbor's CUDA checks and benchmarks on the GPU machine, in one call after
# the ORT bundle was unpacked to /tmp/g by a first call (carry [".gpu"]:
#   mkdir -p /tmp/g && cp .gpu/* /tmp/g/ && source /tmp/g/device-env.sh /tmp/g).
# This call: carry [".gpu-run"], `bash bench/gpu/device.sh [PARTS]`, where
# PARTS is a comma-separated subset of tests,run,engine,profile,steady,programs (default all but steady).
# Everything it measures goes to $OUT.
set -uo pipefail
parts=${1:-tests,run,engine,profile,programs}
has() { [[ ",$parts," == *",$1,"* ]]; }
source /tmp/g/device-env.sh /tmp/g >/dev/null || { echo "unpack the ORT bundle to /tmp/g first"; exit 3; }
A=/tmp/arbor; rm -rf $A; mkdir -p $A && xz -dc .gpu-run/bins.tar.xz | tar -x -C $A
export PATH=$A:$PATH ARBOR_TEST_DEVICE=cuda:0 ARBOR_PYTHON=python3 RUST_BACKTRACE=1 ARBOR_REFERENCE_DIR=$PWD/tests/reference
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
nvidia-smi --query-gpu=name,memory.used,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
python3 -c "import numpy, safetensors" 2>&1 | tee -a $OUT/gpu.txt
t() { echo "== $*"; local s=$SECONDS; "$@"; local rc=$?; echo "== rc=$rc in $((SECONDS - s)) s"; return $rc; }
if has tests; then
  t timeout 240 $A/half --test-threads 1 --nocapture 2>&1 | tail -40 | tee $OUT/half.txt
  t timeout 120 $A/reference --test-threads 1 2>&1 | tail -8 | tee $OUT/reference.txt
  ARBOR_TEST_KV_IN_HOST_MEMORY=1 t timeout 120 $A/reference --test-threads 1 2>&1 | tail -3 | tee $OUT/reference-host-pool.txt
  ARBOR_BIN=$A/arbor ARBOR_GUESTS_DIR=$A/guests t timeout 200 $A/run-test example_programs_exit_zero_on_cuda --nocapture 2>&1 | tail -8 | tee $OUT/run-test.txt
fi
M=/tmp/models; mkdir -p $M
if has run; then
  [ -f $M/tiny16/arbor.json ] || arbor export --random tiny --dtype f16 --out $M/tiny16 >/dev/null 2>&1
  for g in few_shot tree_of_thought react_agent judge json_extract; do
    input='{}'; [ $g = judge ] && input='{"question": "Is the sky blue?", "answer_a": "Yes.", "answer_b": "No."}'
    t timeout 60 arbor run --cuda 0 --no-cache --model $M/tiny16 --input "$input" $A/guests/$g.wasm > $OUT/run-$g.txt 2>&1
    echo "$g exit $?" | tee -a $OUT/run-exit.txt; tail -3 $OUT/run-$g.txt
    # The run's time per engine step, to set beside `bench engine`'s (the issue's "real programs run slower").
    grep '^stats: ' $OUT/run-$g.txt | sed 's/^stats: //' | python3 -c "import json,sys; s=json.load(sys.stdin); w=s['run']['wall_time']; t=w['secs']+w['nanos']/1e9; print(f'$g: {s[\"engine_steps\"]} steps in {t*1e3:.0f} ms, {t*1e3/max(s[\"engine_steps\"],1):.2f} ms a step')" | tee -a $OUT/run-steps.txt
  done
fi
if has engine; then
  [ -f $M/l1b/arbor.json ] || t arbor export --random llama-3.2-1b --out $M/l1b 2>&1 | tail -2
  t timeout 200 arbor bench engine --model $M/l1b --cuda 0 --batch 1,8,32,64 --json 2>&1 | tee $OUT/engine-paged.jsonl | grep -v "^{" 
  # Drawn at a temperature: from device candidates vs whole rows on the host, side by side
  # (top-k 50: the candidates decide every draw; top-p 1 on random weights: nearly every draw needs its row).
  t timeout 150 arbor bench engine --model $M/l1b --cuda 0 --batch 1,32 --temperature 0.8 --top-k 50 --json 2>&1 | tee $OUT/engine-sampled-topk.jsonl | grep -v "^{"
  t timeout 150 arbor bench engine --model $M/l1b --cuda 0 --batch 32 --temperature 1.0 --json 2>&1 | tee $OUT/engine-sampled-flat.jsonl | grep -v "^{"
  t timeout 150 arbor bench engine --model $M/l1b --cuda 0 --batch 1,32 --standard-graph --json 2>&1 | tee $OUT/engine-standard.jsonl | grep -v "^{"
  for n in 512 2048; do
    t timeout 60 arbor bench engine --model $M/l1b --cuda 0 --batch 1 --prompt-len $n --decode-steps 8 --json 2>&1 | tee $OUT/engine-prefill-$n.jsonl | grep -v "^{"
  done
fi
if has profile; then
  # ONNX Runtime's per-node timings of a decode at batch 32: where a step goes.
  rm -f /tmp/ortprof*; ARBOR_ORT_PROFILE=/tmp/ortprof timeout 120 arbor bench engine --model $M/l1b --cuda 0 --batch 32 --decode-steps 8 --reps 1 >/dev/null 2>&1
  python3 bench/gpu/ort_profile.py /tmp/ortprof*.json | tee $OUT/profile.txt
  # And of the few-shot workload through the scheduler, one repetition.
  rm -f /tmp/ortprof*; ARBOR_ORT_PROFILE=/tmp/ortprof timeout 120 arbor bench few-shot --model $M/l1b --cuda 0 --max-batch-tokens 4096 --reps 1 2>/dev/null | tail -1
  python3 bench/gpu/ort_profile.py /tmp/ortprof*.json | tee $OUT/profile-few-shot.txt
fi
if has steady; then
  # Decode over 256 steps and 5 repetitions (the default 32 steps x 3 swing by a third at batch 1
  # between runs minutes apart); and at the branching workload's shape (24 then 72 rows over
  # ~260-300 tokens of history), to set beside its time per pass.
  [ -f $M/l1b/arbor.json ] || t arbor export --random llama-3.2-1b --out $M/l1b 2>&1 | tail -2
  t timeout 200 arbor bench engine --model $M/l1b --cuda 0 --batch 1,8,32,64 --decode-steps 256 --reps 5 --json 2>&1 | tee $OUT/engine-steady.jsonl | grep -v "^{"
  t timeout 100 arbor bench engine --model $M/l1b --cuda 0 --batch 24,72 --history 288 --decode-steps 16 --json 2>&1 | tee $OUT/engine-branching-shape.jsonl | grep -v "^{"
  t timeout 150 arbor bench engine --model $M/l1b --cuda 0 --batch 32 --temperature 1.0 --json 2>&1 | tee $OUT/engine-sampled-flat.jsonl | grep -v "^{"
  # select's scoring: 4 x 256 prompt tokens scored on the device vs every row to the host.
  t timeout 120 arbor bench engine --model $M/l1b --cuda 0 --batch 1,4 --prompt-len 256 --decode-steps 1 --score --json 2>&1 | tee $OUT/engine-score.jsonl | grep -v "^{"
  rm -f /tmp/ortprof*; ARBOR_ORT_PROFILE=/tmp/ortprof timeout 120 arbor bench branching --model $M/l1b --cuda 0 --max-batch-tokens 4096 --reps 1 2>/dev/null | tail -1
  python3 bench/gpu/ort_profile.py /tmp/ortprof*.json | tee $OUT/profile-branching.txt
fi
if has programs; then
  for w in few-shot branching multi-turn; do
    timeout 120 arbor bench $w --model $M/l1b --cuda 0 --max-batch-tokens 4096 --json > $OUT/bench-$w.json 2> $OUT/bench-$w.err
    echo "$w exit $?"; tail -2 $OUT/bench-$w.err; cat $OUT/bench-$w.json
  done
fi
