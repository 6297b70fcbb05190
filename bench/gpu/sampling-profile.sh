#!/usr/bin/env bash
# Where a step drawn at a temperature goes on the GPU: ONNX Runtime's
# per-node timings (with each node's execution provider) of the sampling
# candidates session, at batch 1 and 32. Second call after the bundle was
# unpacked to /tmp/g (see device.sh); needs only `arbor` in .gpu-run.
source "$(dirname "$0")/prelude.sh"
for b in 1 32; do
  rm -f /tmp/sp*; ARBOR_ORT_PROFILE=/tmp/sp timeout 120 arbor bench engine --model $M/l1b --cuda 0 --batch $b \
    --temperature 0.8 --top-k 50 --decode-steps 8 --reps 1 2>&1 | grep sampled
  echo "== batch $b: sampling candidates session"
  python3 - /tmp/sp-sampling-candidates*.json <<'PY'
import collections, json, sys
ev = json.load(open(sys.argv[1]))
runs = [e["dur"] for e in ev if e.get("cat") == "Session" and e.get("name") == "model_run"]
print(f"{len(runs)} runs, median {sorted(runs)[len(runs)//2]/1e3:.3f} ms")
by = collections.defaultdict(lambda: [0, 0])
for e in ev:
    if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
        k = (e["args"].get("op_name"), e["args"].get("provider"))
        by[k][0] += e["dur"]; by[k][1] += 1
for (op, prov), (d, n) in sorted(by.items(), key=lambda x: -x[1][0]):
    print(f"  {op:20s} {prov:24s} {d/max(n,1)/1e3:8.3f} ms x {n}")
PY
done
