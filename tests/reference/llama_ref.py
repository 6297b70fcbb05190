#!/usr/bin/env python3
"""An independent float64 forward pass of a Llama-family Hugging Face checkpoint.

Written from the published architecture (RMSNorm, rotary embeddings with
rotate-half, grouped-query attention, SwiGLU), in plain NumPy, sharing no code
with Arbor's engine. It reads config.json and the safetensors weights directly.

Usage: llama_ref.py HF_DIR < requests.json > results.json
requests: {"prompts": [[ids...], ...], "max_tokens": N, "all_logits": false}
results:  {"results": [{"greedy": [ids...], "margins": [...], "last_logits": [...],
                        "logits": [[...], ...]}]}
For each prompt it returns the greedy continuation of max_tokens tokens, the
gap between the best and second-best logit at each greedy step (a tiny gap
means rounding may legitimately flip the choice), and the logits at the last
prompt position. With "all_logits", "logits" holds one row per position of
prompt + greedy[:-1]: row i predicts the token after position i.

The interpreter is whatever runs it (Arbor's tests use $ARBOR_PYTHON, default
python3); it needs numpy and safetensors.
"""
import json
import math
import os
import sys

try:
    import numpy as np
    from safetensors.numpy import load_file
except ImportError as e:
    sys.exit(
        f"llama_ref.py needs numpy and safetensors ({e}); install them with "
        f"`{sys.executable} -m pip install numpy safetensors`"
    )


def load_weights(d):
    single = os.path.join(d, "model.safetensors")
    if os.path.exists(single):
        raw = load_file(single)
    else:
        with open(os.path.join(d, "model.safetensors.index.json")) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        raw = {}
        for s in shards:
            raw.update(load_file(os.path.join(d, s)))
    return {k: v.astype(np.float64) for k, v in raw.items()}


def inv_freq(cfg, head_dim):
    theta = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        if kind == "linear":
            inv = inv / rs["factor"]
        elif kind == "llama3":
            factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            lo_wl, hi_wl = old / lo, old / hi
            out = []
            for f in inv:
                wl = 2 * math.pi / f
                if wl < hi_wl:
                    out.append(f)
                elif wl > lo_wl:
                    out.append(f / factor)
                else:
                    s = (old / wl - lo) / (hi - lo)
                    out.append((1 - s) * f / factor + s * f)
            inv = np.array(out)
    return inv


class Model:
    def __init__(self, d):
        with open(os.path.join(d, "config.json")) as f:
            self.cfg = cfg = json.load(f)
        self.w = load_weights(d)
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads", self.n_heads)
        self.hd = cfg.get("head_dim") or cfg["hidden_size"] // self.n_heads
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.inv = inv_freq(cfg, self.hd)
        self.window = cfg.get("sliding_window") if cfg["model_type"] == "mistral" else None
        self.bias = cfg.get("attention_bias", cfg["model_type"] == "qwen2")
        tied = cfg.get("tie_word_embeddings", False)
        self.head = self.w["model.embed_tokens.weight"] if tied else self.w["lm_head.weight"]

    def norm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):
        # x: [T, heads, hd]
        f = np.outer(pos, self.inv)
        emb = np.concatenate([f, f], axis=-1)
        cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
        half = self.hd // 2
        rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rot * sin

    def logits(self, ids):
        """Logits at every position of ids, full causal attention from scratch."""
        w = self.w
        T = len(ids)
        pos = np.arange(T, dtype=np.float64)
        x = w["model.embed_tokens.weight"][np.array(ids)]
        mask = np.tril(np.ones((T, T), dtype=bool))
        if self.window:
            idx = np.arange(T)
            mask &= (idx[:, None] - idx[None, :]) < self.window
        g = self.n_heads // self.n_kv
        for l in range(self.n_layers):
            p = f"model.layers.{l}"
            h = self.norm(x, w[f"{p}.input_layernorm.weight"])

            def proj(name):
                y = h @ w[f"{p}.self_attn.{name}.weight"].T
                if self.bias:
                    y = y + w[f"{p}.self_attn.{name}.bias"]
                return y

            q = self.rope(proj("q_proj").reshape(T, self.n_heads, self.hd), pos)
            k = self.rope(proj("k_proj").reshape(T, self.n_kv, self.hd), pos)
            v = proj("v_proj").reshape(T, self.n_kv, self.hd)
            out = np.zeros((T, self.n_heads, self.hd))
            for hh in range(self.n_heads):
                kv = hh // g
                s = q[:, hh, :] @ k[:, kv, :].T / math.sqrt(self.hd)
                s = np.where(mask, s, -np.inf)
                s = s - s.max(axis=-1, keepdims=True)
                pr = np.exp(s)
                pr /= pr.sum(axis=-1, keepdims=True)
                out[:, hh, :] = pr @ v[:, kv, :]
            x = x + out.reshape(T, -1) @ w[f"{p}.self_attn.o_proj.weight"].T
            h = self.norm(x, w[f"{p}.post_attention_layernorm.weight"])
            gate = h @ w[f"{p}.mlp.gate_proj.weight"].T
            up = h @ w[f"{p}.mlp.up_proj.weight"].T
            act = gate / (1.0 + np.exp(-gate)) * up
            x = x + act @ w[f"{p}.mlp.down_proj.weight"].T
        x = self.norm(x, w["model.norm.weight"])
        return x @ self.head.T


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: llama_ref.py HF_DIR < requests.json > results.json")
    m = Model(sys.argv[1])
    req = json.load(sys.stdin)
    results = []
    for prompt in req["prompts"]:
        ids = list(prompt)
        last = m.logits(ids)[-1]
        greedy, margins = [], []
        for _ in range(req["max_tokens"]):
            row = m.logits(ids)[-1]
            nxt = int(np.argmax(row))
            top2 = np.sort(row)[-2:]
            greedy.append(nxt)
            margins.append(float(top2[1] - top2[0]))
            ids.append(nxt)
        r = {"greedy": greedy, "margins": margins, "last_logits": last.tolist()}
        if req.get("all_logits"):
            seq = list(prompt) + greedy[:-1] if greedy else list(prompt)
            r["logits"] = m.logits(seq).tolist()
        results.append(r)
    # dumps, not dump: the C encoder, several times faster on megabytes of logits.
    sys.stdout.write(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
