#!/usr/bin/env python3
"""ONNX Runtime GenAI (onnxruntime-genai-cuda 0.18) on the peers' shapes, through its Generator API.

  python3 -m onnxruntime_genai.models.builder -i /tmp/peers/hf -o /tmp/peers/genai -p fp16 -e cuda
  python3 bench/peers/genai_bench.py --model /tmp/peers/genai --out $OUT/genai.json
(on the GPU machine through run-device.sh, which puts GenAI and ONNX Runtime's CUDA build on PYTHONPATH).

How it is driven: one og.Generator per call (a batch of equal-length prompts), with
params.set_search_options(batch_size=B, max_length=prompt + new, min_length=max_length, do_sample=False)
(greedy; min_length = max_length masks EOS, so every sequence runs to its length; max_length is the
exact need, so the KV buffer GenAI shares between past and present is no larger than the call).
append_tokens() with the B x L prompt ids runs the prompt's forward; each generate_next_token()
picks a token from the current logits, running one forward first whenever the last picked token
is not yet in the cache (so n new tokens = the prompt forward + n-1 decode forwards).
  decode    B sequences: append 64 ids, one generate_next_token() (the first token), then 32 timed
            generate_next_token() calls (32 forwards of B x 1), synchronised by get_next_tokens()
  prefill   batch 1: append_tokens(L ids) + generate_next_token() + get_next_tokens(), timed; the
            generator's creation (its KV allocation) is timed apart (setup_ms)
  few-shot, branching, multi-turn: workloads.py's shapes, in waves (ready calls of all programs
            batched, at most --*-batches per call; equal lengths, so no padding); a Generator keeps
            nothing between calls (no prefix cache), so each call has its whole prompt.
  --drivers engine (also by default): the workloads through og.Engine, GenAI 0.18's continuous batcher
            over a paged KV cache (a model built with --extra_options use_paged_attention=true, given as
            --engine-model): every ready call of a wave is a request, all handed over at once; once with
            engine.dynamic_batching.prefix_caching off and once on (GenAI 0.18's engine can reuse cached
            prefixes: its hit rate is reported as cached_prompt_tokens / hit_rate).
Times: median of --reps / --workload-reps after one untimed warm-up. One JSON object on stdout and in
--out (rewritten after every measurement).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads as W  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20).stdout.strip().splitlines()[0]
    except Exception:
        return "unknown"


def api(cls) -> list[str]:
    return sorted(n for n in dir(cls) if not n.startswith("_"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a GenAI model directory (genai_config.json, model.onnx)")
    ap.add_argument("--provider", default=None,
                    help="replace genai_config's providers with this one (cuda, cpu); default: as built")
    ap.add_argument("--provider-option", action="append", default=[], metavar="KEY=VALUE",
                    help="a provider option (e.g. enable_cuda_graph=1); needs --provider")
    ap.add_argument("--tiny", action="store_true", help="small sweeps and one rep (smoke test)")
    ap.add_argument("--only", default="decode,prefill,few-shot,branching,multi-turn")
    ap.add_argument("--decode-batches", default="1,8,32,64")
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--prefill-lens", default="128,512,2048")
    ap.add_argument("--fewshot-batches", default="1,16,32")
    ap.add_argument("--branching-batches", default="32,64")
    ap.add_argument("--multiturn-batches", default="16")
    ap.add_argument("--shapes", choices=["brief", "arbor"], default="brief")
    ap.add_argument("--drivers", default="generator,engine",
                    help="workload drivers: generator (one og.Generator per batch), engine (og.Engine)")
    ap.add_argument("--engine-model", default=None,
                    help="model for the engine driver, built with --extra_options use_paged_attention=true "
                         "(its genai_config has engine.dynamic_batching); default: --model if it has that")
    ap.add_argument("--engine-prefix-caching", default="off,on",
                    help="engine runs: off/on (overlay engine.dynamic_batching.prefix_caching), as-built")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workload-reps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.tiny:  # smaller defaults; what was given explicitly stays
        for k, v in dict(decode_batches="1,4", prefill_lens="128,512", fewshot_batches="1,16",
                         branching_batches="16", reps=1, workload_reps=1).items():
            if getattr(a, k) == ap.get_default(k):
                setattr(a, k, v)

    import onnxruntime_genai as og

    t0 = time.perf_counter()
    config = og.Config(a.model)
    if a.provider:
        config.clear_providers()
        if a.provider != "cpu":
            config.append_provider(a.provider)
            for kv in a.provider_option:
                k, v = kv.split("=", 1)
                config.set_provider_option(a.provider, k, v)
    model = og.Model(config)
    load_s = time.perf_counter() - t0
    gcfg = json.load(open(os.path.join(a.model, "genai_config.json")))
    vocab = int(gcfg["model"]["vocab_size"])
    shape_file = os.path.join(a.model, "peers_shape.json")
    report = {
        "peer": "onnxruntime-genai",
        "versions": {"onnxruntime_genai": getattr(og, "__version__", "?"), "python": platform.python_version(),
                     "ort_lib": os.environ.get("ORT_LIB_PATH", "")},
        "device": gpu_name() if (a.provider or "cuda") != "cpu" else platform.processor() or "cpu",
        "model_device_type": getattr(model, "device_type", "?"),
        "dtype": "float16" if (a.provider or "cuda") != "cpu" else "as built",
        "model_dir": a.model,
        "model": json.load(open(shape_file)) if os.path.exists(shape_file) else None,
        "genai_config": {"search": gcfg.get("search"),
                         "session_options": gcfg["model"].get("decoder", {}).get("session_options"),
                         "context_length": gcfg["model"].get("context_length"),
                         "pad_token_id": gcfg["model"].get("pad_token_id"),
                         "eos_token_id": gcfg["model"].get("eos_token_id")},
        "provider_override": {"provider": a.provider, "options": a.provider_option} if a.provider else None,
        "load_s": round(load_s, 2),
        "og_api": {c: api(getattr(og, c)) for c in ("Generator", "GeneratorParams", "Engine", "Request")
                   if hasattr(og, c)},
        "driven": {
            "decode_prefill": ("one og.Generator per measurement (batch_size=B, max_length=exact, min_length=max_length, "
                       "greedy); decode: 32 generate_next_token() after the prompt and first token; prefill: "
                       "append_tokens + first generate_next_token + get_next_tokens"),
            "workloads": ("one og.Generator per batch of equal-length prompts: append_tokens(B x L), n x "
                          "generate_next_token(), get_sequence(i)[L:]"),
        },
        "results": [],
    }

    def emit(r):
        report["results"].append(r)
        if a.out:
            with open(a.out, "w") as f:
                json.dump(report, f, indent=1)

    def generator(batch: int, max_length: int):
        p = og.GeneratorParams(model)
        p.set_search_options(batch_size=batch, max_length=max_length, min_length=max_length, do_sample=False)
        return og.Generator(model, p)

    def ids(rows: int, n: int, seed: int) -> np.ndarray:
        g = W.Ids(vocab, seed)
        return np.ascontiguousarray(np.array([g(n) for _ in range(rows)], dtype=np.int32).reshape(-1))

    def run_batch(prompts, n):
        length = len(prompts[0])
        g = generator(len(prompts), length + n)
        g.append_tokens(np.ascontiguousarray(np.array(prompts, dtype=np.int32).reshape(-1)))
        for _ in range(n):
            g.generate_next_token()
        outs = [np.asarray(g.get_sequence(i))[length:].tolist() for i in range(len(prompts))]
        del g
        return outs

    only = set(a.only.split(","))
    report["probe"] = run_batch([W.probe_prompt(vocab)], 8)[0]
    if "decode" in only:
        for b in W.int_list(a.decode_batches):
            try:
                x = ids(b, a.prompt, a.seed + b)
                times = []
                for rep in range(a.reps + 1):  # the first is the warm-up
                    g = generator(b, a.prompt + 1 + a.steps)
                    g.append_tokens(x)
                    g.generate_next_token()
                    g.get_next_tokens()
                    t = time.perf_counter()
                    for _ in range(a.steps):
                        g.generate_next_token()
                    g.get_next_tokens()
                    times.append(time.perf_counter() - t)
                    seq_len = len(g.get_sequence(0))
                    del g
                secs = sorted(times[1:])[len(times[1:]) // 2]
                assert seq_len == a.prompt + 1 + a.steps, seq_len
                r = {"bench": "engine", "phase": "decode", "batch": b, "history": a.prompt, "tokens": b * a.steps,
                     "passes": a.steps, "seconds": secs, "tokens_per_s": b * a.steps / secs,
                     "ms_per_step": secs * 1e3 / a.steps}
                log(f"decode batch {b}: {r['tokens_per_s']:.0f} tokens/s ({r['ms_per_step']:.2f} ms/step)")
            except Exception as e:
                r = {"bench": "engine", "phase": "decode", "batch": b, "error": repr(e)[:500]}
                log(f"decode batch {b}: {e!r}")
            emit(r)
    if "prefill" in only:
        for n in W.int_list(a.prefill_lens):
            try:
                x = ids(1, n, a.seed + 1000 + n)
                times, setups = [], []
                for rep in range(a.reps + 1):
                    t = time.perf_counter()
                    g = generator(1, n + 1)
                    t1 = time.perf_counter()
                    g.append_tokens(x)
                    g.generate_next_token()
                    g.get_next_tokens()
                    times.append(time.perf_counter() - t1)
                    setups.append(t1 - t)
                    del g
                secs = sorted(times[1:])[len(times[1:]) // 2]
                r = {"bench": "engine", "phase": "prefill", "batch": 1, "prompt_len": n, "tokens": n, "passes": 1,
                     "seconds": secs, "tokens_per_s": n / secs,
                     "setup_ms": sorted(setups[1:])[len(setups[1:]) // 2] * 1e3}
                log(f"prefill {n}: {r['tokens_per_s']:.0f} tokens/s ({secs * 1e3:.2f} ms, setup "
                    f"{r['setup_ms']:.2f} ms)")
            except Exception as e:
                r = {"bench": "engine", "phase": "prefill", "batch": 1, "prompt_len": n, "error": repr(e)[:500]}
                log(f"prefill {n}: {e!r}")
            emit(r)
    for name, batches in (("few-shot", a.fewshot_batches), ("branching", a.branching_batches),
                          ("multi-turn", a.multiturn_batches)):
        if name not in only:
            continue
        for mb in W.int_list(batches):
            try:
                r = W.run_workload(name, a.shapes, vocab, run_batch, mb, a.workload_reps, a.seed, log)
                r["driven"] += "; " + report["driven"]["workloads"]
            except Exception as e:
                r = {"bench": "workload", "workload": name, "max_batch": mb, "error": repr(e)[:500]}
                log(f"{name} max batch {mb}: {e!r}")
            r["driver"] = "generator"
            emit(r)
    del model
    gc.collect()
    if "engine" in a.drivers.split(",") and only & {"few-shot", "branching", "multi-turn"}:
        engine_workloads(a, og, only, vocab, report, emit)
    print(json.dumps(report), flush=True)


def engine_workloads(a, og, only, vocab, report, emit):
    """The workloads through og.Engine (GenAI's continuous batcher over a paged KV cache): every ready
    call of a wave becomes a request (one turn: greedy, min = max generated tokens), all handed to the
    engine at once; engine.run() is called until every turn has finished. A fresh engine per run (its
    prefix cache starts empty; the warm-up has its own)."""
    path = a.engine_model or a.model
    gcfg = json.load(open(os.path.join(path, "genai_config.json")))
    dyn = gcfg.get("engine", {}).get("dynamic_batching")
    settings = [x for x in a.engine_prefix_caching.split(",") if x]
    if dyn is None and any(x != "as-built" for x in settings):
        note = (f"engine driver skipped: {path} has no engine.dynamic_batching (build it with --extra_options "
                f"use_paged_attention=true), and the engine without it batches nothing")
        log(note)
        report.setdefault("notes", []).append(note)
        return
    report["engine_model"] = {"dir": path, "dynamic_batching": dyn,
                              "search_chunk_size": gcfg.get("search", {}).get("chunk_size")}
    F = og.EngineEventFlags
    for setting in settings:
        try:
            config = og.Config(path)
            if a.provider:
                config.clear_providers()
                if a.provider != "cpu":
                    config.append_provider(a.provider)
            if setting in ("on", "off"):
                config.overlay(json.dumps({"engine": {"dynamic_batching": {"prefix_caching": setting == "on"}}}))
            model = og.Model(config)
        except Exception as e:
            log(f"engine, prefix caching {setting}: {e!r}")
            emit({"bench": "workload", "workload": "(engine setup)", "driver": "engine", "prefix_caching": setting,
                  "error": repr(e)[:500]})
            continue
        st = {"engine": None}

        def reset():
            st["engine"] = None
            gc.collect()
            st["engine"] = og.Engine(model)
            st["buf"] = st["engine"].create_event_buffer(8192)
            st.update(steps=0, prompt=0, cached=0)

        def stats():
            return {"engine_steps": st["steps"], "engine_prompt_tokens": st["prompt"],
                    "cached_prompt_tokens": st["cached"],
                    "hit_rate": st["cached"] / st["prompt"] if st["prompt"] else 0.0}

        def run_wave(calls):
            e, buf = st["engine"], st["buf"]
            reqs, index = [], {}
            for i, (p, n) in enumerate(calls):
                r = e.create_request()
                to = og.TurnOptions(r)
                to.set_do_sample(False)
                to.set_max_generated_tokens(n)
                to.set_min_generated_tokens(n)
                r.begin_turn(np.asarray(p, dtype=np.int32), to)
                reqs.append(r)
                index[id(r)] = i
            outs = [[] for _ in calls]
            finished = 0
            while finished < len(calls):
                if not e.has_pending_requests():
                    raise RuntimeError(f"engine idle with {len(calls) - finished} turns unfinished")
                e.run(buf)
                st["steps"] += 1
                for k in range(len(buf)):
                    ev = buf[k]
                    i = index.get(id(ev.request))
                    if i is None:
                        i = next(j for j, r in enumerate(reqs) if r == ev.request)
                    if ev.flags & F.FAILED:
                        raise RuntimeError(f"request failed: {ev.error_code}")
                    if ev.flags & F.TOKEN:
                        outs[i].append(int(ev.token))
                    if ev.flags & F.TURN_FINISHED:
                        finished += 1
                        st["prompt"] += ev.usage.prompt_tokens
                        st["cached"] += ev.usage.cached_prompt_tokens
            for r in reqs:
                r.close()
            return outs

        caps = None
        for name in ("few-shot", "branching", "multi-turn"):
            if name not in only:
                continue
            try:
                r = W.run_workload(name, a.shapes, vocab, None, 0, a.workload_reps, a.seed, log, run_wave=run_wave,
                                   reset=reset, stats=stats)
                if caps is None:
                    c = st["engine"].get_capabilities()
                    caps = {"configured_max_batch_size": c.configured_max_batch_size,
                            "max_request_length": c.max_request_length, "max_scheduled_tokens": c.max_scheduled_tokens}
                r["engine_capabilities"] = caps
                r["driven"] += ("; og.Engine: one request per call (begin_turn with the whole prompt, greedy, "
                                "min = max generated tokens), engine.run() until all turns finish, a fresh "
                                "engine per run")
            except Exception as e:
                r = {"bench": "workload", "workload": name, "error": repr(e)[:500]}
                log(f"{name} engine prefix caching {setting}: {e!r}")
            r["driver"] = "engine"
            r["prefix_caching"] = setting
            emit(r)
        st["engine"] = None
        del model
        gc.collect()


if __name__ == "__main__":
    sys.exit(main())
