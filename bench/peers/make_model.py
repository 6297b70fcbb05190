#!/usr/bin/env python3
"""Builds a random-weight LlamaForCausalLM and save_pretrained()s it, with a trivial word-level
tokenizer (token i is the word "t<i>"), so that transformers and GenAI's model builder can load it.

Default shape: Llama-3.2-1B (hidden 2048, 16 layers, 32 heads, 8 KV heads, head_dim 64,
intermediate 8192, vocab 128256, rope_theta 500000 with Llama-3 rope scaling, tied embeddings),
as Arbor's `llama-3.2-1b` preset. --tiny: Arbor's tiny preset shape (a CPU smoke test).

  python3 bench/peers/make_model.py --out /tmp/peers/hf [--device cuda] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

LLAMA32_1B = dict(hidden=2048, layers=16, heads=32, kv_heads=8, head_dim=64, intermediate=8192,
                  vocab=128256, rope_theta=500000.0, max_pos=131072, tie=True, llama3_rope=True)
TINY = dict(hidden=128, layers=4, heads=4, kv_heads=2, head_dim=32, intermediate=352,
            vocab=512, rope_theta=10000.0, max_pos=2048, tie=False, llama3_rope=False)


def special_ids(vocab: int) -> dict:
    """BOS/EOS at the top of the vocabulary (as Llama 3's 128000/128001 for the full vocabulary);
    pad = EOS. workloads.id_range keeps synthetic ids below them."""
    if vocab >= 4096:
        return dict(bos=vocab - 256, eos=vocab - 255)
    return dict(bos=vocab - 2, eos=vocab - 1)


def make_tokenizer(vocab: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    sp = special_ids(vocab)
    names = {i: f"t{i}" for i in range(vocab)}
    names[sp["bos"]] = "<|begin_of_text|>"
    names[sp["eos"]] = "<|end_of_text|>"
    names[0] = "<unk>"
    tok = Tokenizer(models.WordLevel({w: i for i, w in names.items()}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=names[sp["bos"]],
                                   eos_token=names[sp["eos"]], pad_token=names[sp["eos"]],
                                   unk_token="<unk>", model_max_length=1 << 30)


def make_config(s: dict):
    from transformers import LlamaConfig

    sp = special_ids(s["vocab"])
    kw = dict(vocab_size=s["vocab"], hidden_size=s["hidden"], intermediate_size=s["intermediate"],
              num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
              num_key_value_heads=s["kv_heads"], head_dim=s["head_dim"], hidden_act="silu",
              max_position_embeddings=s["max_pos"], rms_norm_eps=1e-5, rope_theta=s["rope_theta"],
              tie_word_embeddings=s["tie"], attention_bias=False, mlp_bias=False,
              bos_token_id=sp["bos"], eos_token_id=sp["eos"], pad_token_id=sp["eos"],
              initializer_range=0.02)
    if s["llama3_rope"]:
        kw["rope_scaling"] = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    cfg = LlamaConfig(**kw)
    # transformers 5 keeps rope_theta inside rope_parameters; make sure both spellings agree.
    rp = getattr(cfg, "rope_parameters", None)
    if isinstance(rp, dict) and rp.get("rope_theta") not in (None, s["rope_theta"]):
        rp["rope_theta"] = s["rope_theta"]
    return cfg


def build(s: dict, device: str, seed: int):
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = make_config(s)
    with torch.device(device):
        model = LlamaForCausalLM(cfg)  # random init (normal, std initializer_range) on the device
    return model.to(torch.float16).eval(), cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory to save_pretrained() into")
    ap.add_argument("--tiny", action="store_true", help="Arbor's tiny preset shape (CPU smoke test)")
    ap.add_argument("--device", default=None, help="where to initialise (default: cuda if available)")
    ap.add_argument("--seed", type=int, default=0)
    for k, v in LLAMA32_1B.items():
        if isinstance(v, bool):
            ap.add_argument("--" + k.replace("_", "-"), type=lambda x: x.lower() in ("1", "true", "yes"),
                            default=None, metavar="BOOL")
        else:
            ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=None)
    a = ap.parse_args(argv)
    s = dict(TINY if a.tiny else LLAMA32_1B)
    for k in s:
        if getattr(a, k) is not None:
            s[k] = getattr(a, k)

    import torch
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    model, cfg = build(s, device, a.seed)
    t1 = time.perf_counter()
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out)
    make_tokenizer(s["vocab"]).save_pretrained(a.out)
    t2 = time.perf_counter()
    params = sum(p.numel() for p in model.parameters())
    info = {"out": a.out, "shape": s, "params": params, "dtype": "float16", "device": device,
            "special_ids": special_ids(s["vocab"]), "seed": a.seed,
            "init_s": round(t1 - t0, 2), "save_s": round(t2 - t1, 2)}
    with open(os.path.join(a.out, "peers_shape.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info), flush=True)


if __name__ == "__main__":
    sys.exit(main())
