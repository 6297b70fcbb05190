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
    print(f"run wall: median {d[len(d)//2]/1e3:.3f} ms, min {d[0]/1e3:.3f} ms")
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
