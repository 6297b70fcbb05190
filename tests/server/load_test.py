"""Load test from a second process: concurrent completions from several
tenants against a running `arbor serve`, over loopback only.

    python3 load_test.py URL MODEL KEY_HEAVY KEY_LIGHT... [--heavy N] [--light N]

Every request must end in 200 or a clear refusal (429 with Retry-After);
none may be lost. Prints p50/p99 latency overall and per tenant, and the
heaviest tenant's share of completions while the others still waited.
Returns the report as a dict when imported (see test_load.py)."""

import argparse
import asyncio
import json
import statistics
import sys
import time
from urllib.parse import urlparse

import httpx


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


async def one(client, url, model, key, tenant, i, results):
    t0 = time.perf_counter()
    body = {"model": model, "prompt": f"Request {i} from {tenant}:", "max_tokens": 8, "temperature": 0}
    try:
        r = await client.post(url + "/v1/completions", json=body, headers={"Authorization": f"Bearer {key}"})
        status, retry = r.status_code, r.headers.get("retry-after")
        ok = status == 200 and r.json()["choices"][0]["finish_reason"] in ("stop", "length")
    except Exception as e:  # a lost request: reported, never hidden
        status, retry, ok = f"lost: {type(e).__name__}: {e}", None, False
    results.append({"tenant": tenant, "status": status, "ok": ok, "retry_after": retry,
                    "latency": time.perf_counter() - t0, "done_at": time.perf_counter()})


async def run(url, model, keys, heavy, light):
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the load test only targets loopback")
    results = []
    plan = [("t0", keys[0], heavy)] + [(f"t{j}", k, light) for j, k in enumerate(keys[1:], 1)]
    limits = httpx.Limits(max_connections=sum(n for _, _, n in plan) + 8)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        tasks = []
        # Interleave submissions so arrival order alone would mix tenants.
        for i in range(max(n for _, _, n in plan)):
            for tenant, key, n in plan:
                if i < n:
                    tasks.append(asyncio.create_task(one(client, url, model, key, tenant, i, results)))
        t0 = time.perf_counter()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
    return report(results, plan, wall)


def report(results, plan, wall):
    total = sum(n for _, _, n in plan)
    lat = [r["latency"] for r in results if r["ok"]]
    statuses = {}
    for r in results:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    per = {}
    for tenant, _, n in plan:
        ls = [r["latency"] for r in results if r["tenant"] == tenant and r["ok"]]
        per[tenant] = {"sent": n, "ok": len(ls), "p50": pct(ls, 50), "p90": pct(ls, 90), "p99": pct(ls, 99)}
    # While any light tenant still had requests outstanding, how many of the
    # completions went to the heavy tenant?
    done = sorted((r for r in results if r["ok"]), key=lambda r: r["done_at"])
    last_light = max((r["done_at"] for r in done if r["tenant"] != "t0"), default=0)
    window = [r for r in done if r["done_at"] <= last_light]
    heavy_share = sum(r["tenant"] == "t0" for r in window) / max(1, len(window))
    rep = {"sent": total, "answered": len(results), "statuses": statuses, "wall_s": wall,
           "p50_s": pct(lat, 50), "p99_s": pct(lat, 99), "per_tenant": per,
           "heavy_share_while_others_waited": heavy_share, "tenants": len(plan)}
    print(json.dumps(rep, indent=2))
    return rep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("model")
    ap.add_argument("keys", nargs="+")
    ap.add_argument("--heavy", type=int, default=110)
    ap.add_argument("--light", type=int, default=30)
    a = ap.parse_args()
    rep = asyncio.run(run(a.url, a.model, a.keys, a.heavy, a.light))
    sys.exit(0 if rep["answered"] == rep["sent"] and not any(k.startswith("lost") for k in rep["statuses"]) else 1)


if __name__ == "__main__":
    main()
