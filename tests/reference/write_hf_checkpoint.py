#!/usr/bin/env python3
"""Writes a small random-weight checkpoint in the layout Hugging Face
`transformers` uses, without any Arbor code, so that Arbor's importer is
tested on files it did not write itself.

Usage: write_hf_checkpoint.py --variant {qwen2,mistral,llama3} --seed N --out DIR [--encode]

Variants, each chosen to exercise a different part of the importer:
- qwen2:   attention biases, float16 weights in 3 shards with
           model.safetensors.index.json, a model vocabulary padded beyond the
           tokenizer's, a Qwen-style regex + byte-level tokenizer.
- mistral: sliding_window 16 (shorter than the test prompts), multi-query
           attention (1 KV head), float32 in one file, a SentencePiece-style
           (Metaspace) BPE tokenizer.
- llama3:  tied embeddings (no lm_head.weight), llama3 rope_scaling, an
           explicit head_dim with heads * head_dim != hidden_size, and a list
           of eos ids.

With --encode, reads a JSON list of strings from stdin and prints their token
ids under the written tokenizer (Python `tokenizers`), so the Rust side can
check it reads the tokenizer the same way.

Needs numpy, safetensors and tokenizers (the interpreter is $ARBOR_PYTHON in
Arbor's tests, default python3).
"""
import argparse
import json
import os
import sys

try:
    import numpy as np
    from safetensors.numpy import save_file
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
except ImportError as e:
    sys.exit(
        f"write_hf_checkpoint.py needs numpy, safetensors and tokenizers ({e}); install them with "
        f"`{sys.executable} -m pip install numpy safetensors tokenizers`"
    )

CORPUS = """\
The quick brown fox jumps over the lazy dog while the farmer counts his sheep.
Question: What is the capital of France? Answer: Paris is the capital of France.
Once upon a time there was a small village at the edge of a great forest.
def add(a, b):
    return a + b
{"name": "Arbor", "version": 1, "tags": ["wasm", "llm", "sandbox"]}
In 1969, astronauts landed on the Moon and returned safely to the Earth.
The weather today is sunny with a light breeze from the west and no rain.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 2024 3.14159 -42
She sells sea shells by the sea shore, and the shells she sells are sea shells.
A journey of a thousand miles begins with a single step, said the old teacher.
Programs run inside a WebAssembly sandbox and call the host to generate text.
""" * 3

QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

VARIANTS = {
    "qwen2": dict(
        config=dict(
            architectures=["Qwen2ForCausalLM"],
            model_type="qwen2",
            hidden_act="silu",
            vocab_size=448,
            hidden_size=96,
            intermediate_size=256,
            num_hidden_layers=3,
            num_attention_heads=6,
            num_key_value_heads=2,
            max_position_embeddings=512,
            max_window_layers=3,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            rope_scaling=None,
            sliding_window=32768,
            use_sliding_window=False,
            tie_word_embeddings=False,
            attention_dropout=0.0,
            initializer_range=0.02,
            use_cache=True,
            torch_dtype="float16",
        ),
        dtype=np.float16,
        shards=3,
        tokenizer="qwen",
        tokenizer_vocab=416,
    ),
    "mistral": dict(
        config=dict(
            architectures=["MistralForCausalLM"],
            model_type="mistral",
            hidden_act="silu",
            vocab_size=480,
            hidden_size=64,
            intermediate_size=192,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=1024,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            rope_scaling=None,
            sliding_window=16,
            tie_word_embeddings=False,
            attention_dropout=0.0,
            initializer_range=0.02,
            use_cache=True,
            torch_dtype="float32",
        ),
        dtype=np.float32,
        shards=1,
        tokenizer="sentencepiece",
        tokenizer_vocab=200,
    ),
    "llama3": dict(
        config=dict(
            architectures=["LlamaForCausalLM"],
            model_type="llama",
            hidden_act="silu",
            vocab_size=352,
            hidden_size=96,
            intermediate_size=224,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            max_position_embeddings=256,
            rms_norm_eps=1e-5,
            rope_theta=500000.0,
            rope_scaling=dict(
                factor=8.0,
                high_freq_factor=4.0,
                low_freq_factor=1.0,
                original_max_position_embeddings=64,
                rope_type="llama3",
            ),
            attention_bias=False,
            mlp_bias=False,
            pretraining_tp=1,
            tie_word_embeddings=True,
            attention_dropout=0.0,
            initializer_range=0.02,
            use_cache=True,
            torch_dtype="float32",
        ),
        dtype=np.float32,
        shards=2,
        tokenizer="llama3",
        tokenizer_vocab=352,
    ),
}


def train_tokenizer(kind, vocab_size):
    """Returns (tokenizer, special tokens, tokenizer_config fields)."""
    if kind == "sentencepiece":
        specials = ["<unk>", "<s>", "</s>"]
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
        # The decoder Llama-2 and Mistral ship: spaces back, byte pieces to bytes.
        tok.decoder = decoders.Sequence([
            decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        extra = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True, add_eos_token=False,
                     tokenizer_class="LlamaTokenizer", legacy=False)
    elif kind == "qwen":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        extra = dict(bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>", tokenizer_class="Qwen2Tokenizer",
                     chat_template="{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
                                   "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
                                   "{{ '<|im_start|>assistant\n' }}{% endif %}")
    else:
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|eot_id|>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        extra = dict(bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
                     tokenizer_class="PreTrainedTokenizerFast")
    alphabet = pre_tokenizers.ByteLevel.alphabet() if kind != "sentencepiece" else []
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(CORPUS.splitlines(), trainer)
    if kind == "sentencepiece":
        # SentencePiece models carry the 256 byte-fallback pieces <0x00>..<0xFF>
        # right after the specials; the trainer does not make them.
        j = json.loads(tok.to_str())
        vocab = {s: i for i, s in enumerate(specials)}
        vocab.update({f"<0x{b:02X}>": len(specials) + b for b in range(256)})
        for t, _ in sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1]):
            vocab.setdefault(t, len(vocab))
        j["model"]["vocab"] = vocab
        tok = Tokenizer.from_str(json.dumps(j))
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return tok, specials, extra


def init_tensors(cfg, rng, dtype):
    """Random weights whose logits spread over several units: near-uniform
    logits would make greedy decoding hinge on rounding noise."""
    d, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or d // heads
    bias = cfg["model_type"] == "qwen2" or cfg.get("attention_bias", False)
    tied = cfg["tie_word_embeddings"]

    def linear(out_f, in_f):
        return rng.normal(0.0, 1.0 / np.sqrt(in_f), (out_f, in_f))

    def norm(n):
        return 1.0 + rng.uniform(-0.2, 0.2, n)

    t = {}
    t["model.embed_tokens.weight"] = rng.normal(0.0, 4.0 / np.sqrt(d) if tied else 1.0, (v, d))
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        t[f"{p}.input_layernorm.weight"] = norm(d)
        t[f"{p}.self_attn.q_proj.weight"] = linear(heads * hd, d)
        t[f"{p}.self_attn.k_proj.weight"] = linear(kv * hd, d)
        t[f"{p}.self_attn.v_proj.weight"] = linear(kv * hd, d)
        if bias:
            t[f"{p}.self_attn.q_proj.bias"] = rng.normal(0.0, 0.1, heads * hd)
            t[f"{p}.self_attn.k_proj.bias"] = rng.normal(0.0, 0.1, kv * hd)
            t[f"{p}.self_attn.v_proj.bias"] = rng.normal(0.0, 0.1, kv * hd)
        t[f"{p}.self_attn.o_proj.weight"] = linear(d, heads * hd)
        t[f"{p}.post_attention_layernorm.weight"] = norm(d)
        t[f"{p}.mlp.gate_proj.weight"] = linear(inter, d)
        t[f"{p}.mlp.up_proj.weight"] = linear(inter, d)
        t[f"{p}.mlp.down_proj.weight"] = linear(d, inter)
    t["model.norm.weight"] = norm(d)
    if not tied:
        t["lm_head.weight"] = rng.normal(0.0, 4.0 / np.sqrt(d), (v, d))
    return {k: np.ascontiguousarray(a.astype(dtype)) for k, a in t.items()}


def save_weights(tensors, out, shards):
    if shards == 1:
        save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        return
    names = list(tensors)
    per = -(-len(names) // shards)
    weight_map = {}
    for i in range(shards):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[i * per:(i + 1) * per]}
        save_file(part, os.path.join(out, fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in part})
    index = {"metadata": {"total_size": int(sum(a.nbytes for a in tensors.values()))}, "weight_map": weight_map}
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--encode", action="store_true")
    a = ap.parse_args()
    spec = VARIANTS[a.variant]
    os.makedirs(a.out, exist_ok=True)

    tok, specials, tok_extra = train_tokenizer(spec["tokenizer"], spec["tokenizer_vocab"])
    if tok.get_vocab_size() > spec["config"]["vocab_size"]:
        sys.exit(f"tokenizer has {tok.get_vocab_size()} tokens, more than the model's vocabulary")
    tok.save(os.path.join(a.out, "tokenizer.json"))
    ids = {s: tok.token_to_id(s) for s in specials}

    cfg = dict(spec["config"])
    cfg["transformers_version"] = "4.46.2"
    if a.variant == "qwen2":
        cfg["bos_token_id"] = ids["<|endoftext|>"]
        cfg["eos_token_id"] = ids["<|im_end|>"]
    elif a.variant == "mistral":
        cfg["bos_token_id"] = ids["<s>"]
        cfg["eos_token_id"] = ids["</s>"]
    else:
        cfg["bos_token_id"] = ids["<|begin_of_text|>"]
        cfg["eos_token_id"] = [ids["<|end_of_text|>"], ids["<|eot_id|>"]]
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    gen = {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"],
           "transformers_version": cfg["transformers_version"]}
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)

    added = {str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                      "special": True} for s, i in ids.items()}
    tok_cfg = dict(added_tokens_decoder=added, clean_up_tokenization_spaces=False, model_max_length=cfg[
        "max_position_embeddings"], **tok_extra)
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)
    with open(os.path.join(a.out, "special_tokens_map.json"), "w") as f:
        json.dump({k: v for k, v in tok_extra.items() if k.endswith("_token") and v is not None}, f, indent=2)

    rng = np.random.default_rng(a.seed)
    save_weights(init_tensors(cfg, rng, spec["dtype"]), a.out, spec["shards"])

    if a.encode:
        texts = json.load(sys.stdin)
        json.dump([tok.encode(t, add_special_tokens=False).ids for t in texts], sys.stdout)


if __name__ == "__main__":
    main()
