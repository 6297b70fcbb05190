#!/usr/bin/env python3
"""Merges Arbor's, GenAI's and transformers' results into markdown tables with Arbor/peer ratios.

  python3 bench/peers/table.py --arbor arbor-engine.jsonl --arbor arbor-prefill.jsonl \\
      --arbor arbor-workloads.jsonl --genai genai.json --hf hf.json --bandwidth bandwidth.json [--out t.md]

Arbor's files: whatever `arbor bench engine --json` (one object a line per measurement, "bench":
"engine") and `arbor bench few-shot|branching|multi-turn --json` (one object a line, "workload")
print, concatenated in any order; lines that are not JSON objects are skipped. Missing from Arbor's
JSON, and so taken as given: the decode history length (`--history`, 64 by default: the peers use
64) and the workload's shape (the peers say theirs in "shapes"/"shape"; `arbor bench` at d118b10
had other branching and multi-turn shapes than the peers' brief: run the peers with --shapes arbor
to compare those like for like, or pass --arbor-shapes to label what Arbor ran). Arbor's prefill
prompt length is tokens / batch (the last measurement of each length counts); decode: the first
measurement of each batch (a later run for other prompt lengths measures decode again).

Headline table: each peer's best configuration (named under it). For a workload, Arbor with its cache
on is set against the peer's best of every configuration, and Arbor with the cache off against the
peer's best configuration that reused no prefix (the Generator, transformers, or the GenAI engine
with prefix caching off / a zero hit rate).
"""
from __future__ import annotations

import argparse
import json
import sys


def read_objects(path: str) -> list[dict]:
    text = open(path).read()
    try:
        obj = json.loads(text)
        return obj if isinstance(obj, list) else [obj]
    except json.JSONDecodeError:
        pass
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def fmt(x, unit=""):
    if x is None:
        return "—"
    if x >= 1000:
        s = f"{x:,.0f}"
    elif x >= 100:
        s = f"{x:.0f}"
    elif x >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.2f}"
    return s + unit


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "—"


class Peer:
    def __init__(self, report: dict | None):
        self.r = report or {}
        self.results = [x for x in self.r.get("results", []) if "error" not in x]
        self.errors = [x for x in self.r.get("results", []) if "error" in x]

    def decode(self, b):
        xs = [x for x in self.results if x.get("phase") == "decode" and x.get("batch") == b]
        return xs[-1]["tokens_per_s"] if xs else None

    def prefill(self, n):
        xs = [x for x in self.results if x.get("phase") == "prefill" and x.get("batch") == 1
              and x.get("prompt_len", x.get("tokens")) == n]
        return xs[-1]["tokens_per_s"] if xs else None

    def workloads(self, name):
        return [x for x in self.results if x.get("bench") == "workload" and x.get("workload") == name]

    @staticmethod
    def label(x):
        if x.get("driver") == "engine":
            return f"engine, prefix caching {x.get('prefix_caching')}" + (
                f" (hit {x['hit_rate'] * 100:.0f}%)" if x.get("hit_rate") else "")
        mb = x.get("max_batch")
        how = "one by one" if mb == 1 else f"batches of {mb}"
        return how if x.get("largest_batch", mb) == mb or mb == 1 else f"{how} (largest {x['largest_batch']})"

    def best(self, name, no_reuse=False):
        xs = self.workloads(name)
        if no_reuse:
            xs = [x for x in xs if not x.get("cached_prompt_tokens") and x.get("prefix_caching") != "on"]
        return max(xs, key=lambda x: x["throughput"]) if xs else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arbor", action="append", default=[], help="a file of Arbor's --json output (repeatable)")
    ap.add_argument("--genai", default=None)
    ap.add_argument("--hf", default=None)
    ap.add_argument("--bandwidth", default=None)
    ap.add_argument("--arbor-shapes", default=None, help="label for the shapes Arbor's workloads ran (brief/arbor)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)

    arbor_engine, arbor_work = [], {}
    for path in a.arbor:
        for o in read_objects(path):
            if o.get("bench") == "engine":
                arbor_engine.append(o)
            elif "workload" in o:
                arbor_work[o["workload"]] = o
    genai = Peer(json.load(open(a.genai)) if a.genai else None)
    hf = Peer(json.load(open(a.hf)) if a.hf else None)
    bw = json.load(open(a.bandwidth)) if a.bandwidth else None

    def arbor_decode(b):
        # The first: a later `arbor bench engine` run for other prompt lengths measures decode again.
        xs = [x for x in arbor_engine if x.get("phase") == "decode" and x.get("batch") == b]
        return xs[0]["tokens_per_s"] if xs else None

    def arbor_prefill(n):
        xs = [x for x in arbor_engine if x.get("phase") == "prefill" and x.get("batch") == 1
              and x.get("tokens") == n]
        return xs[-1]["tokens_per_s"] if xs else None

    bound = {r["batch"]: r["max_tokens_per_s"] for r in (bw or {}).get("decode_bound", [])}
    lines = []
    w = lines.append
    dev = genai.r.get("device") or hf.r.get("device") or "?"
    shape = (genai.r.get("model") or hf.r.get("model") or {}).get("shape")
    if shape and shape.get("hidden") == 2048 and shape.get("layers") == 16 and shape.get("vocab") == 128256:
        what = "Llama-3.2-1B shape"
    elif shape:
        what = "shape " + ", ".join(f"{k} {v}" for k, v in shape.items())
    else:
        what = "model shape not recorded"
    w(f"{what}, fp16, random weights; device: {dev}.")
    vs = []
    if genai.r:
        vs.append(f"ONNX Runtime GenAI {genai.r.get('versions', {}).get('onnxruntime_genai', '?')}")
    if hf.r:
        v = hf.r.get("versions", {})
        vs.append(f"transformers {v.get('transformers', '?')} (torch {v.get('torch', '?')}, "
                  f"{hf.r.get('attn_implementation', '?')})")
    if vs:
        w("Peers: " + "; ".join(vs) + ".")
    if bw:
        m = bw["measurement"]
        w(f"Device copy bandwidth {m['bandwidth_gbps']:,.0f} GB/s (read + write); weights read per decode step "
          f"{bw['weight_bytes_per_step'] / 1e9:.2f} GB.")
    w("")
    w("| measurement | Arbor | GenAI | transformers | Arbor/GenAI | Arbor/transformers |")
    w("|---|---|---|---|---|---|")
    batches = sorted({x["batch"] for x in arbor_engine if x.get("phase") == "decode"}
                     | {x["batch"] for p in (genai, hf) for x in p.results if x.get("phase") == "decode"})
    for b in batches:
        ar, ge, tr = arbor_decode(b), genai.decode(b), hf.decode(b)
        extra = f" (bound {fmt(bound[b])}{'; Arbor ' + format(ar / bound[b] * 100, '.0f') + '%' if ar else ''})" \
            if b in bound else ""
        w(f"| decode tok/s, batch {b}{extra} | {fmt(ar)} | {fmt(ge)} | {fmt(tr)} | {ratio(ar, ge)} | {ratio(ar, tr)} |")
    lens = sorted({x["tokens"] for x in arbor_engine if x.get("phase") == "prefill" and x.get("batch") == 1}
                  | {x.get("prompt_len") for p in (genai, hf) for x in p.results if x.get("phase") == "prefill"}
                  - {None})
    for n in lens:
        ar, ge, tr = arbor_prefill(n), genai.prefill(n), hf.prefill(n)
        w(f"| prefill tok/s, {n} tokens, batch 1 | {fmt(ar)} | {fmt(ge)} | {fmt(tr)} | {ratio(ar, ge)} | {ratio(ar, tr)} |")
    notes = []
    for name in ("few-shot", "branching", "multi-turn"):
        ao = arbor_work.get(name)
        pw = genai.workloads(name) + hf.workloads(name)
        if not ao and not pw:
            continue
        unit = "chats/s" if name == "multi-turn" else "programs/s"
        shapes = {x.get("shapes") for x in pw} - {None}
        if ao and name != "few-shot" and a.arbor_shapes and shapes and a.arbor_shapes not in shapes:
            notes.append(f"{name}: Arbor ran the {a.arbor_shapes} shapes, the peers {', '.join(sorted(shapes))}: "
                         "not like for like")
        progs = {x.get("programs") for x in pw} - {None}
        if ao and progs and ao.get("programs") not in progs:
            notes.append(f"{name}: Arbor ran {ao.get('programs')} programs, the peers {', '.join(map(str, sorted(progs)))} "
                         "(Arbor's --scale?)")
        for cache in ("on", "off"):
            ar = ao.get(f"throughput_cache_{cache}") if ao else None
            if ao is None and cache == "off":
                continue
            g, t = genai.best(name, no_reuse=cache == "off"), hf.best(name, no_reuse=cache == "off")
            gv, tv = (g or {}).get("throughput"), (t or {}).get("throughput")
            lab = f"{name} {unit}" + (f", Arbor cache {cache}" if ao else "")
            gl = f" ({Peer.label(g)})" if g else ""
            tl = f" ({Peer.label(t)})" if t else ""
            w(f"| {lab} | {fmt(ar)} | {fmt(gv)}{gl} | {fmt(tv)}{tl} | {ratio(ar, gv)} | {ratio(ar, tv)} |")
        shape = next((x.get("shape") for x in pw if x.get("shape")), None)
        if shape:
            notes.append(f"{name} (peers, {', '.join(sorted(shapes))} shapes): {shape}")
    w("")
    if arbor_work:
        for name, o in arbor_work.items():
            notes.append(f"Arbor {name}: hit rate {o.get('hit_rate', 0) * 100:.1f}% of a possible "
                         f"{o.get('hit_rate_max', 0) * 100:.1f}%, {o.get('programs')} programs, "
                         f"{o.get('reps')} runs (median); shape not in its JSON"
                         + (f" (labelled {a.arbor_shapes})" if a.arbor_shapes else ""))
    if notes:
        for n in notes:
            w(f"- {n}")
        w("")

    # Every peer configuration.
    rows = []
    for peer, p in (("GenAI", genai), ("transformers", hf)):
        for x in p.results:
            if x.get("bench") == "workload":
                rows.append(f"| {peer} | {x['workload']} ({x.get('shapes')}) | {Peer.label(x)} | "
                            f"{fmt(x['throughput'])} {x['throughput_unit']} | {fmt(x.get('tokens_per_s'))} | "
                            f"{x.get('calls')} calls / {x.get('batches')} {'waves' if x.get('driver') == 'engine' else 'batches'} |")
        for x in p.errors:
            rows.append(f"| {peer} | {x.get('workload') or x.get('phase')} | batch {x.get('batch', x.get('max_batch'))} "
                        f"| error: {x['error'][:120]} | | |")
    if rows:
        w("| peer | workload | configuration | throughput | tokens/s | calls |")
        w("|---|---|---|---|---|---|")
        lines.extend(rows)
        w("")
    for peer, p in (("GenAI", genai), ("transformers", hf)):
        d = p.r.get("driven")
        if d:
            w(f"- {peer} driven: " + "; ".join(f"{k}: {v}" for k, v in d.items()))
    if genai.r.get("probe") and hf.r.get("probe"):
        same = genai.r["probe"] == hf.r["probe"]
        w(f"- probe (8 greedy tokens after a fixed prompt): GenAI and transformers "
          f"{'agree' if same else 'differ (fp16 near-ties with random weights can do that)'}: "
          f"{genai.r['probe']} / {hf.r['probe']}")
    text = "\n".join(lines).rstrip() + "\n"
    if a.out:
        open(a.out, "w").write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    sys.exit(main())
