//! The CUDA forward graph (`model.cuda.onnx`): attention by ONNX Runtime's
//! `com.microsoft.PagedAttention` over the KV pool in place, with fewer,
//! bigger kernels than the standard-op graph of [`crate::graph`].
//!
//! `PagedAttention` has CUDA kernels only and takes half precision only, so
//! this graph exists for `f16` and `bf16` models; the CPU (and `f32` on
//! CUDA) keep the standard-op graph. Both read the same `weights.bin`.
//!
//! Per layer: `SkipSimplifiedLayerNormalization` (residual add + RMSNorm in
//! one kernel), one QKV GEMM whose packed `[T, (H + 2 KVH) HD]` output goes
//! straight into `PagedAttention` (rotary inside it), the O GEMM, one
//! gate/up GEMM, SiLU and the down GEMM. The QKV and gate/up weights are
//! concatenations of the checkpoint's tensors as graph nodes over
//! initializers: ONNX Runtime folds them once at load time, so the weights
//! file stays one layout for both graphs.
//!
//! The attention operator writes each new token's K/V into its slot itself
//! (position `past_seqlens[b] + i` through the block table), so no history
//! is gathered, no mask is built and no second session writes K/V back.
//!
//! Inputs (`T` new tokens, `B` sequences, `MB` blocks per sequence, `P`
//! logit rows, `NB` pool blocks of [`BLOCK`] tokens):
//! - `input_ids [T] i64`
//! - `cu_seqlens [B + 1] i32`: cumulative new-token counts
//! - `past_seqlens [B] i32`: tokens already in each sequence's blocks
//! - `block_table [B, MB] i32`: each sequence's blocks, in position order
//! - `attention_metadata [2] i32`, a host tensor: the step's longest query
//!   and longest key length (the operator sizes its launches from them
//!   instead of reading the device tensors back)
//! - `logit_index [P] i64`: rows of `[T]` whose logits are wanted
//! - `k_cache_{l}`, `v_cache_{l} [NB, BLOCK, KVH, HD]`, one pair per layer
//!
//! Outputs: `logits [P, V] f32`, `next_token [P] i64` (the arg max of each
//! logit row, for greedy rows that need nothing else from the device), and
//! `k_cache_{l}_out`, `v_cache_{l}_out`: the caches, which the engine binds
//! to the same buffers as the inputs.

use crate::graph::{Weights, rotary_tables};
use anyhow::{Context, Result, bail};
use arbor_engine::ModelConfig;
use arbor_engine::format::CUDA_BLOCK;
use arbor_onnx::{Attr, Dim, ElemType, Graph};

/// Tokens per KV block: the engine's [`CUDA_BLOCK`].
pub const BLOCK: usize = CUDA_BLOCK;

/// Builds the paged forward graph. The pool's block count is read from the
/// caches' shape at run time.
pub fn build(cfg: &ModelConfig, dtype: ElemType, weights: &Weights) -> Result<Graph> {
    if dtype == ElemType::F32 {
        bail!("the paged CUDA graph needs f16 or bf16 weights (PagedAttention has no f32 kernel)");
    }
    let mut g = Graph::new();
    let (h, kvh, hd) = (
        cfg.num_heads as i64,
        cfg.num_kv_heads as i64,
        cfg.head_dim as i64,
    );
    let n = |s: &'static str| Dim::Named(s);
    let input_ids = g.input("input_ids", ElemType::I64, vec![n("T")]);
    let cu = g.input("cu_seqlens", ElemType::I32, vec![n("B1")]);
    let past = g.input("past_seqlens", ElemType::I32, vec![n("B")]);
    let table = g.input("block_table", ElemType::I32, vec![n("B"), n("MB")]);
    let meta = g.input("attention_metadata", ElemType::I32, vec![Dim::Fixed(2)]);
    let logit_index = g.input("logit_index", ElemType::I64, vec![n("P")]);

    let w = |g: &mut Graph, name: &str| -> Result<String> {
        let (dims, data) = weights
            .get(name)
            .with_context(|| format!("checkpoint lacks tensor {name}"))?;
        Ok(g.initializer(name, dtype, dims.clone(), data.clone()))
    };
    let concat0 =
        |g: &mut Graph, parts: &[&str]| g.op1("Concat", parts, vec![("axis", Attr::Int(0))]);

    let (cos, sin) = rotary_tables(&mut g, cfg, dtype);
    let embed = w(&mut g, "model.embed_tokens.weight")?;
    let x0 = g.op1(
        "Gather",
        &[&embed, &input_ids],
        vec![("axis", Attr::Int(0))],
    );
    let eps = ("epsilon", Attr::Float(cfg.rms_norm_eps as f32));
    let cache_dims = || {
        vec![
            n("NB"),
            Dim::Fixed(BLOCK as i64),
            Dim::Fixed(kvh),
            Dim::Fixed(hd),
        ]
    };
    let gu_split = g.const_i64(
        vec![2],
        &[cfg.intermediate_size as i64, cfg.intermediate_size as i64],
    );
    let mut attrs = vec![
        ("num_heads", Attr::Int(h)),
        ("kv_num_heads", Attr::Int(kvh)),
        ("do_rotary", Attr::Int(1)),
        ("rotary_interleaved", Attr::Int(0)),
        ("scale", Attr::Float((1.0 / (hd as f64).sqrt()) as f32)),
    ];
    if let Some(window) = cfg.sliding_window {
        // The operator's window counts keys before the query; the standard
        // graph's `window` counts the query itself.
        attrs.push(("local_window_size", Attr::Int(window as i64 - 1)));
    }

    // `residual` is the stream before the pending add of `delta`; the first
    // layer's norm has nothing to add.
    let mut residual = x0;
    let mut delta: Option<String> = None;
    for l in 0..cfg.num_layers {
        let p = format!("model.layers.{l}");
        let ln1 = w(&mut g, &format!("{p}.input_layernorm.weight"))?;
        let (xn, res) = skip_norm(&mut g, &residual, delta.as_deref(), &ln1, &eps);
        residual = res;

        let names = ["q_proj", "k_proj", "v_proj"];
        let mut ws = Vec::new();
        for name in names {
            ws.push(w(&mut g, &format!("{p}.self_attn.{name}.weight"))?);
        }
        let refs: Vec<&str> = ws.iter().map(String::as_str).collect();
        let wqkv = concat0(&mut g, &refs);
        let qkv = if cfg.attention_bias {
            let mut bs = Vec::new();
            for name in names {
                bs.push(w(&mut g, &format!("{p}.self_attn.{name}.bias"))?);
            }
            let refs: Vec<&str> = bs.iter().map(String::as_str).collect();
            let bqkv = concat0(&mut g, &refs);
            g.op1("Gemm", &[&xn, &wqkv, &bqkv], vec![("transB", Attr::Int(1))])
        } else {
            g.op1("Gemm", &[&xn, &wqkv], vec![("transB", Attr::Int(1))])
        };

        let kc = g.input(&format!("k_cache_{l}"), dtype, cache_dims());
        let vc = g.input(&format!("v_cache_{l}"), dtype, cache_dims());
        let (kc_out, vc_out) = (format!("k_cache_{l}_out"), format!("v_cache_{l}_out"));
        g.declare_output(&kc_out, dtype, cache_dims());
        g.declare_output(&vc_out, dtype, cache_dims());
        let att = g.value_name();
        // Inputs 10-15 (slot mapping, head sink, q/k norms, k/v scales) are
        // absent: the write path derives each slot from the block table.
        g.op_multi(
            "com.microsoft",
            "PagedAttention",
            &[
                &qkv, "", "", &kc, &vc, &cu, &past, &table, &cos, &sin, "", "", "", "", "", "",
                &meta,
            ],
            &[&att, &kc_out, &vc_out],
            attrs.clone(),
        );
        let wo = w(&mut g, &format!("{p}.self_attn.o_proj.weight"))?;
        let o = g.op1("Gemm", &[&att, &wo], vec![("transB", Attr::Int(1))]);

        let ln2 = w(&mut g, &format!("{p}.post_attention_layernorm.weight"))?;
        let (xn, res) = skip_norm(&mut g, &residual, Some(&o), &ln2, &eps);
        residual = res;
        let wg = w(&mut g, &format!("{p}.mlp.gate_proj.weight"))?;
        let wu = w(&mut g, &format!("{p}.mlp.up_proj.weight"))?;
        let wgu = concat0(&mut g, &[&wg, &wu]);
        let gu = g.op1("Gemm", &[&xn, &wgu], vec![("transB", Attr::Int(1))]);
        let (gate, up) = (g.value_name(), g.value_name());
        g.op_multi(
            "",
            "Split",
            &[&gu, &gu_split],
            &[&gate, &up],
            vec![("axis", Attr::Int(1))],
        );
        let sig = g.op1("Sigmoid", &[&gate], vec![]);
        let act = g.op1("Mul", &[&gate, &sig], vec![]);
        let act = g.op1("Mul", &[&act, &up], vec![]);
        let wd = w(&mut g, &format!("{p}.mlp.down_proj.weight"))?;
        delta = Some(g.op1("Gemm", &[&act, &wd], vec![("transB", Attr::Int(1))]));
    }

    // Only the rows whose logits are wanted reach the final norm and head.
    let last = match &delta {
        Some(d) => g.op1("Add", &[&residual, d], vec![]),
        None => residual,
    };
    let xl = g.op1(
        "Gather",
        &[&last, &logit_index],
        vec![("axis", Attr::Int(0))],
    );
    let norm = w(&mut g, "model.norm.weight")?;
    let xl = g.op1(
        "SimplifiedLayerNormalization",
        &[&xl, &norm],
        vec![
            ("axis", Attr::Int(-1)),
            eps.clone(),
            ("stash_type", Attr::Int(1)),
        ],
    );
    let head = if cfg.tie_word_embeddings {
        embed
    } else {
        w(&mut g, "lm_head.weight")?
    };
    let logits = g.op1("Gemm", &[&xl, &head], vec![("transB", Attr::Int(1))]);
    let logits = g.op1(
        "Cast",
        &[&logits],
        vec![("to", Attr::Int(ElemType::F32 as i64))],
    );
    let ids = g.op1(
        "ArgMax",
        &[&logits],
        vec![("axis", Attr::Int(-1)), ("keepdims", Attr::Int(0))],
    );
    g.output(
        &logits,
        "logits",
        ElemType::F32,
        vec![n("P"), Dim::Fixed(cfg.vocab_size as i64)],
    );
    g.output(&ids, "next_token", ElemType::I64, vec![n("P")]);
    Ok(g)
}

/// RMSNorm of `residual + delta` (or of `residual` alone), returning the
/// normed value and the sum, which is the next residual stream.
fn skip_norm(
    g: &mut Graph,
    residual: &str,
    delta: Option<&str>,
    weight: &str,
    eps: &(&str, Attr),
) -> (String, String) {
    let Some(delta) = delta else {
        let xn = g.op1(
            "SimplifiedLayerNormalization",
            &[residual, weight],
            vec![
                ("axis", Attr::Int(-1)),
                (eps.0, eps.1.clone()),
                ("stash_type", Attr::Int(1)),
            ],
        );
        return (xn, residual.to_string());
    };
    let (xn, sum) = (g.value_name(), g.value_name());
    // Outputs: normed, mean, inv_std_var, input + skip.
    g.op_multi(
        "com.microsoft",
        "SkipSimplifiedLayerNormalization",
        &[residual, delta, weight],
        &[&xn, "", "", &sum],
        vec![(eps.0, eps.1.clone())],
    );
    (xn, sum)
}
