#!/usr/bin/env python3
"""Device memory bandwidth (a large device-to-device copy with torch) and the decode bound it implies.

A decode step of batch B reads every weight once (the layers, the final norm and the lm_head; the
embedding table only B rows) plus each sequence's KV cache, so it takes at least
    (weight bytes + B x context x KV bytes per token) / bandwidth
and gives at most B / that tokens per second. The bandwidth is that of the copy: bytes read + bytes
written per second (a copy of N bytes moves 2N), the figure to divide bytes read by.

  python3 bench/peers/bandwidth.py --out $OUT/bandwidth.json            # on the GPU
  python3 bench/peers/bandwidth.py --bandwidth-gbps 4270                 # no GPU: just the bound
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads as W  # noqa: E402

LLAMA32_1B = dict(hidden=2048, layers=16, heads=32, kv_heads=8, head_dim=64, intermediate=8192,
                  vocab=128256, tie=True)


def weight_bytes_per_step(s: dict, dtype_bytes: int = 2) -> int:
    d, hd = s["hidden"], s["head_dim"]
    layer = (d * s["heads"] * hd + 2 * d * s["kv_heads"] * hd + s["heads"] * hd * d  # q, k, v, o
             + 3 * d * s["intermediate"] + 2 * d)  # gate, up, down; two norms
    return (s["layers"] * layer + d + s["vocab"] * d) * dtype_bytes  # + final norm + lm_head


def kv_bytes_per_token(s: dict, dtype_bytes: int = 2) -> int:
    return s["layers"] * 2 * s["kv_heads"] * s["head_dim"] * dtype_bytes


def measure(device: str, nbytes: int, reps: int) -> dict:
    import torch

    dev = torch.device(device)
    n = nbytes // 2
    src = torch.empty(n, dtype=torch.float16, device=dev).normal_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize(dev)
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        dst.copy_(src)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    times.sort()
    t = times[len(times) // 2]
    return {"device": torch.cuda.get_device_name(dev), "bytes_copied": n * 2, "reps": reps,
            "median_s": t, "best_s": times[0],
            "copy_gbps": n * 2 / t / 1e9,            # bytes copied per second
            "bandwidth_gbps": 2 * n * 2 / t / 1e9,   # read + written per second (median)
            "bandwidth_gbps_best": 2 * n * 2 / times[0] / 1e9}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--gib", type=float, default=4.0, help="size of the copied buffer")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--bandwidth-gbps", type=float, default=None, help="skip the measurement, use this")
    ap.add_argument("--model", default=None, help="a make_model.py directory (its peers_shape.json); "
                                                  "default: the Llama-3.2-1B shape")
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--context", type=float, default=80.0,
                    help="mean tokens in each sequence's KV cache during the steps "
                         "(default: a 64-token prompt + half of 32 steps)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)

    s = dict(LLAMA32_1B)
    if a.model:
        with open(os.path.join(a.model, "peers_shape.json")) as f:
            s.update(json.load(f)["shape"])
    m = ({"given": True, "bandwidth_gbps": a.bandwidth_gbps} if a.bandwidth_gbps
         else measure(a.device, int(a.gib * (1 << 30)), a.reps))
    bw = m["bandwidth_gbps"] * 1e9
    wb, kvt = weight_bytes_per_step(s), kv_bytes_per_token(s)
    rows = []
    for b in W.int_list(a.batches):
        step_bytes = wb + b * a.context * kvt
        t = step_bytes / bw
        rows.append({"batch": b, "context": a.context, "bytes_per_step": int(step_bytes),
                     "min_ms_per_step": t * 1e3, "max_tokens_per_s": b / t})
    report = {"bench": "bandwidth", "measurement": m, "shape": s, "weight_bytes_per_step": wb,
              "kv_bytes_per_token": kvt, "decode_bound": rows}
    print(f"bandwidth {m['bandwidth_gbps']:.0f} GB/s (read + write of a {a.gib:g} GiB copy)"
          if not a.bandwidth_gbps else f"bandwidth {a.bandwidth_gbps:.0f} GB/s (given)", file=sys.stderr)
    print(f"weights read per step {wb / 1e9:.3f} GB, KV {kvt / 1024:.0f} KiB per token", file=sys.stderr)
    for r in rows:
        print(f"  batch {r['batch']:>3}: >= {r['min_ms_per_step']:.3f} ms/step, <= {r['max_tokens_per_s']:,.0f} "
              f"tokens/s", file=sys.stderr)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    sys.exit(main())
