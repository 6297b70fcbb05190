#!/usr/bin/env python3
"""Hugging Face transformers (sdpa attention, fp16, eager PyTorch) on the peers' shapes.

  python3 bench/peers/hf_bench.py --model /tmp/peers/hf --out $OUT/hf.json
  python3 bench/peers/hf_bench.py --model /tmp/peers-tiny/hf --device cpu --tiny     # smoke test

Measures (synthetic, seeded token ids; greedy; EOS never ends a sequence):
  decode    B sequences after a 64-token prompt, 32 greedy steps timed apart from the prompt
            (one forward of B x 1 tokens a step on the DynamicCache the prompt's forward returned)
  prefill   one prompt of L tokens: the forward that fills the cache and gives the first token
  few-shot, branching, multi-turn: workloads.py's shapes, driven in waves (ready calls of all
            programs batched, at most --*-batches per call), each call through model.generate()
            (--driver generate, as a user would) or a hand-written greedy loop (--driver loop).
Times: median of --reps (engine) / --workload-reps (workloads) after one untimed warm-up.
One JSON object on stdout and in --out (rewritten after every measurement).
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads as W  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a save_pretrained() directory (make_model.py)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa, eager, flash_attention_2)")
    ap.add_argument("--tiny", action="store_true", help="small sweeps and one rep (smoke test)")
    ap.add_argument("--only", default="decode,prefill,few-shot,branching,multi-turn")
    ap.add_argument("--decode-batches", default="1,8,32,64")
    ap.add_argument("--prompt", type=int, default=64, help="decode: prompt tokens before the timed steps")
    ap.add_argument("--steps", type=int, default=32, help="decode: timed steps")
    ap.add_argument("--prefill-lens", default="128,512,2048")
    ap.add_argument("--fewshot-batches", default="1,16,64")
    ap.add_argument("--branching-batches", default="64")
    ap.add_argument("--multiturn-batches", default="16")
    ap.add_argument("--shapes", choices=["brief", "arbor"], default="brief",
                    help="workload shapes: the peers' brief, or those of `arbor bench` (workloads.py)")
    ap.add_argument("--driver", choices=["generate", "loop"], default="generate")
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

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig

    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    kw = {"attn_implementation": a.attn}
    kw["dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"] = torch.float16
    model = AutoModelForCausalLM.from_pretrained(a.model, **kw).to(dev).to(torch.float16).eval()
    load_s = time.perf_counter() - t0
    cfg = model.config
    vocab = cfg.vocab_size
    eos, pad = cfg.eos_token_id, cfg.pad_token_id if cfg.pad_token_id is not None else cfg.eos_token_id
    fwd_params = inspect.signature(model.forward).parameters
    keep = {"logits_to_keep": 1} if "logits_to_keep" in fwd_params else {}
    # transformers >= 5.2x names the KV cache argument and output `cache` (`past_key_values` before).
    cache_kw = "cache" if "cache" in fwd_params else "past_key_values"
    shape_file = os.path.join(a.model, "peers_shape.json")
    report = {
        "peer": "transformers",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "device": torch.cuda.get_device_name(dev) if cuda else platform.processor() or "cpu",
        "attn_implementation": getattr(cfg, "_attn_implementation", a.attn),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "model_dir": a.model,
        "model": json.load(open(shape_file)) if os.path.exists(shape_file) else None,
        "params": sum(p.numel() for p in model.parameters()),
        "load_s": round(load_s, 2),
        "driven": {
            "decode_prefill": ("eager PyTorch, torch.inference_mode; decode: model(B x 1) per step on the "
                       "DynamicCache of the prompt's forward, argmax on the device; prefill: one "
                       "model(1 x L) forward (logits of the last token only) + argmax"),
            "workloads": (f"driver={a.driver}: " + ("model.generate(input_ids, attention_mask, "
                          "max_new_tokens=n, min_new_tokens=n, greedy) per batch of equal-length "
                          "prompts" if a.driver == "generate" else "prefill forward + n-1 decode "
                          "forwards per batch of equal-length prompts")),
        },
        "results": [],
    }

    def emit(r):
        report["results"].append(r)
        if a.out:
            with open(a.out, "w") as f:
                json.dump(report, f, indent=1)

    def ids_tensor(rows, n, seed):
        g = W.Ids(vocab, seed)
        return torch.tensor([g(n) for _ in range(rows)], dtype=torch.long, device=dev)

    def cache_of(out):
        return out[cache_kw] if cache_kw in out else out.past_key_values

    def prefill(ids):
        out = model(input_ids=ids, use_cache=True, **keep)
        return cache_of(out), out.logits[:, -1].argmax(-1, keepdim=True)

    def step(tok, pkv):
        out = model(input_ids=tok, use_cache=True, **{cache_kw: pkv})
        return cache_of(out), out.logits[:, -1].argmax(-1, keepdim=True)

    gen_cfgs = {}

    def gen_cfg(n):  # min_new_tokens = max_new_tokens: EOS cannot end a sequence early
        if n not in gen_cfgs:
            gen_cfgs[n] = GenerationConfig(do_sample=False, num_beams=1, eos_token_id=eos, pad_token_id=pad,
                                           bos_token_id=cfg.bos_token_id, max_new_tokens=n, min_new_tokens=n)
        return gen_cfgs[n]

    def run_batch(prompts, n):
        ids = torch.tensor(prompts, dtype=torch.long, device=dev)
        if a.driver == "generate":
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gen_cfg(n))
            return out[:, ids.shape[1]:].tolist()
        pkv, tok = prefill(ids)
        toks = [tok]
        for _ in range(n - 1):
            pkv, tok = step(tok, pkv)
            toks.append(tok)
        return torch.cat(toks, 1).tolist()

    only = set(a.only.split(","))
    with torch.inference_mode():
        report["probe"] = run_batch([W.probe_prompt(vocab)], 8)[0]
        if "decode" in only:
            for b in W.int_list(a.decode_batches):
                try:
                    ids = ids_tensor(b, a.prompt, a.seed + b)
                    times = []
                    for rep in range(a.reps + 1):  # the first is the warm-up
                        pkv, tok = prefill(ids)
                        sync()
                        t = time.perf_counter()
                        for _ in range(a.steps):
                            pkv, tok = step(tok, pkv)
                        sync()
                        times.append(time.perf_counter() - t)
                        del pkv
                    secs = sorted(times[1:])[len(times[1:]) // 2]
                    r = {"bench": "engine", "phase": "decode", "batch": b, "history": a.prompt,
                         "tokens": b * a.steps, "passes": a.steps, "seconds": secs,
                         "tokens_per_s": b * a.steps / secs, "ms_per_step": secs * 1e3 / a.steps}
                    log(f"decode batch {b}: {r['tokens_per_s']:.0f} tokens/s ({r['ms_per_step']:.2f} ms/step)")
                except Exception as e:  # e.g. out of memory: record and go on
                    r = {"bench": "engine", "phase": "decode", "batch": b, "error": repr(e)[:500]}
                    log(f"decode batch {b}: {e!r}")
                emit(r)
                if cuda:
                    torch.cuda.empty_cache()
        if "prefill" in only:
            for n in W.int_list(a.prefill_lens):
                try:
                    ids = ids_tensor(1, n, a.seed + 1000 + n)

                    def f():
                        _, tok = prefill(ids)
                        tok.cpu()  # the first token on the host, as a caller would have it

                    secs = W.median_time(a.reps, f, sync)
                    r = {"bench": "engine", "phase": "prefill", "batch": 1, "prompt_len": n, "tokens": n,
                         "passes": 1, "seconds": secs, "tokens_per_s": n / secs}
                    log(f"prefill {n}: {r['tokens_per_s']:.0f} tokens/s ({secs * 1e3:.2f} ms)")
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
                emit(r)
                if cuda:
                    torch.cuda.empty_cache()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    sys.exit(main())
