#!/usr/bin/env python3
"""Summarises an ONNX Runtime profile (ARBOR_ORT_PROFILE's JSON): per
session run, its wall time and the time its nodes took by operator, so a
step's time splits into kernels and what lies between them."""
import collections, json, sys

events = []
for path in sys.argv[1:]:
    with open(path) as f:
        events += json.load(f)
runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
nodes = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
print(f"{len(runs)} runs, {len(nodes)} node executions")
if runs:
    d = sorted(e["dur"] for e in runs)
    print(f"run wall: median {d[len(d)//2]/1e3:.3f} ms, min {d[0]/1e3:.3f} ms, "
          f"max {d[-1]/1e3:.3f} ms, total {sum(d)/1e3:.1f} ms")
    print("runs in order (ms):", " ".join(f"{e['dur']/1e3:.1f}" for e in runs[:60]))
by_op = collections.defaultdict(lambda: [0, 0])
for e in nodes:
    op = e.get("args", {}).get("op_name", "?")
    by_op[op][0] += 1
    by_op[op][1] += e["dur"]
total = sum(v[1] for v in by_op.values())
n = max(len(runs), 1)
print(f"node time per run {total/n/1e3:.3f} ms, nodes per run {len(nodes)/n:.0f}")
for op, (c, t) in sorted(by_op.items(), key=lambda kv: -kv[1][1])[:15]:
    print(f"  {op:40s} {c/n:6.0f} per run  {t/n/1e3:8.3f} ms per run")

# The slowest runs, node by node: which operators their time went to, and
# the gaps between nodes (time in no node: host work inside the run).
slow = sorted(runs, key=lambda e: -e["dur"])[:6]
for r in slow:
    t0, t1 = r["ts"], r["ts"] + r["dur"]
    inside = [e for e in nodes if t0 <= e["ts"] <= t1]
    ops = collections.defaultdict(float)
    for e in inside:
        ops[e.get("args", {}).get("op_name", "?")] += e["dur"]
    busy = sum(ops.values())
    top = ", ".join(f"{k} {v/1e3:.1f}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:4])
    biggest = sorted(inside, key=lambda e: -e["dur"])[:3]
    print(f"slow run {r['dur']/1e3:.1f} ms: nodes {busy/1e3:.1f} ms ({top}); "
          f"largest: " + ", ".join(f"{e['name']} {e['dur']/1e3:.1f}" for e in biggest))
