"""Program load from a second process: many concurrent runs of real guest
programs from several tenants against a running `arbor serve`, over
loopback only.

    python3 program_load.py URL KEY... --guests DIR --pid PID [--runs N] [--warm N]

Uploads six workload shapes (few-shot, tree-of-thought, JSON extraction, a
4-turn chat, a select among 20 choices of ~200 tokens, a 4x4 fork tree),
then runs them round-robin over the tenants in two phases in the same
server: WARM runs with 8 in flight, then RUNS runs all in flight at once.
Prints a JSON report: successes and failures (with reasons), runs/s and
p50/p99 latency of each phase, and the server's peak RSS (VmHWM of PID)."""

import argparse
import asyncio
import json
import pathlib
import statistics
import time

import httpx

WORKLOADS = [
    ("few_shot", "What colour is the sky?"),
    ("tree_of_thought", "Make 24 from 4, 7, 8 and 8."),
    ("json_extract", "Ada Lovelace, 36, lived in London."),
    ("chat", json.dumps({"system": "You are terse.", "turns": ["Hi!", "What is Arbor?", "Why?", "Thanks."]})),
    ("shapes", "select 20 70"),
    ("shapes", "fork-tree 4 4 2"),
]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def peak_rss_mb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def upload(client, url, key, guests, name):
    data = (pathlib.Path(guests) / f"{name}.wasm").read_bytes()
    r = await client.post(url + "/v1/programs", content=data,
                          headers={"Authorization": f"Bearer {key}", "Content-Type": "application/wasm"})
    r.raise_for_status()
    return r.json()["id"]


async def one(client, url, key, pid, inp, results):
    t0 = time.perf_counter()
    try:
        r = await client.post(f"{url}/v1/programs/{pid}/runs", json={"input": inp},
                              headers={"Authorization": f"Bearer {key}"})
        body = r.json()
        ok = r.status_code == 200 and body.get("status") == "succeeded"
        why = None if ok else f"{r.status_code}: {str(body)[:300]}"
    except Exception as e:  # a lost run: reported, never hidden
        ok, why = False, f"lost: {type(e).__name__}: {e}"
    results.append({"ok": ok, "why": why, "latency": time.perf_counter() - t0})


COUNTERS = ("arbor_prefill_tokens_total", "arbor_cache_hit_tokens_total",
            "arbor_generated_tokens_total", "arbor_preemptions_total")


async def counters(client, url, key):
    """The scheduler's counters, so a phase's report says how much work the
    engine did (tokens computed, served from cache, preemptions), not only
    how long it took."""
    r = await client.get(url + "/metrics", headers={"Authorization": f"Bearer {key}"})
    out = {}
    for line in r.text.splitlines():
        name, _, value = line.partition(" ")
        if name in COUNTERS:
            out[name.removeprefix("arbor_").removesuffix("_total")] = float(value)
    return out


async def phase(client, url, keys, programs, n, in_flight):
    results, sem = [], asyncio.Semaphore(in_flight)
    before = await counters(client, url, keys[0])

    async def bounded(i):
        key = keys[i % len(keys)]
        name, inp = WORKLOADS[(i // len(keys)) % len(WORKLOADS)]
        async with sem:
            await one(client, url, key, programs[(key, name)], inp, results)

    t0 = time.perf_counter()
    await asyncio.gather(*(bounded(i) for i in range(n)))
    wall = time.perf_counter() - t0
    after = await counters(client, url, keys[0])
    work = {k: int(after[k] - before.get(k, 0)) for k in after}
    lat = [r["latency"] for r in results]
    failures = [r["why"] for r in results if not r["ok"]]
    return {"runs": n, "in_flight": in_flight, "succeeded": n - len(failures), "failures": failures[:10],
            "failed": len(failures), "wall_s": round(wall, 2), "runs_per_s": round(n / wall, 2),
            "p50_s": round(statistics.median(lat), 3), "p99_s": round(pct(lat, 99), 3), "engine": work}


async def main(args):
    limits = httpx.Limits(max_connections=args.runs + 8, max_keepalive_connections=args.runs + 8)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0), limits=limits) as client:
        programs = {}
        for key in args.keys:
            for name in sorted({w for w, _ in WORKLOADS}):
                programs[(key, name)] = await upload(client, args.url, key, args.guests, name)
        warm = await phase(client, args.url, args.keys, programs, args.warm, 8)
        load = await phase(client, args.url, args.keys, programs, args.runs, args.runs)
    return {"warm": warm, "load": load, "peak_rss_mb": round(peak_rss_mb(args.pid), 1),
            "throughput_ratio": round(load["runs_per_s"] / warm["runs_per_s"], 2)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("keys", nargs="+")
    ap.add_argument("--guests", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--warm", type=int, default=96)
    print(json.dumps(asyncio.run(main(ap.parse_args())), indent=1))
