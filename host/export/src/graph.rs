//! The forward graph of a Llama-family model over a ragged batch, with a
//! token-granular KV pool, in standard ONNX ops (opset 17, [`arbor_onnx::OPSET`]) plus two fused
//! ONNX Runtime operators that have CPU and CUDA kernels alike
//! (`SimplifiedLayerNormalization`, `com.microsoft.RotaryEmbedding`), so one
//! exported model runs on either device.
//!
//! One run takes the new tokens of many sequences at once (prefill chunks and
//! decode tokens mixed). Projections and the MLP work on the flat `[T, D]`
//! token matrix; only attention is arranged per sequence, padded to
//! `[B, Qmax]` queries over `[B, Lmax]` keys. The history K/V of every
//! sequence is gathered from the pool by slot index (the pool itself is an
//! input that ONNX Runtime reads in place), and the new K/V rows come back as
//! outputs for the engine to write into their slots: no history crosses host
//! memory, and any slot can be shared by any number of sequences.
//!
//! Inputs (`T` new tokens, `H` history rows, `B` sequences, `P` logit rows):
//! - `input_ids [T] i64`, `positions [T] i64`
//! - `hist_rows [L, H] i64`: pool rows of all histories, concatenated, per
//!   layer (row `l * S + slot`: computed by the engine, so that no index
//!   arithmetic runs on the CPU between layers of a GPU graph)
//! - `kv_index [B, Lmax] i64`: for each sequence its keys, as rows of the
//!   concatenation `[history rows (H); new rows (T)]`
//! - `q_index [B, Qmax] i64`: for each sequence its new tokens, as rows of `[T]`
//! - `attn_mask [B, Qmax, Lmax] f32`: additive, 0 where a query sees a key
//! - `out_index [T] i64`: row of `[B * Qmax]` holding each token's attention output
//! - `logit_index [P] i64`: rows of `[T]` whose logits are wanted
//! - `k_pool`, `v_pool [L * S, KVH, HD]` in the model's dtype: layer `l` owns rows `l*S .. (l+1)*S`
//!
//! Outputs: `logits [P, V] f32`, `new_k`, `new_v [L, T, KVH, HD]`.

use anyhow::{Context, Result};
use arbor_engine::ModelConfig;
use arbor_onnx::{Attr, Dim, ElemType, Graph, TensorData};
use std::collections::HashMap;

/// Weights by Hugging Face tensor name, already in the graph's dtype.
pub type Weights = HashMap<String, (Vec<i64>, TensorData)>;

/// Builds the forward graph. The pool size `S` is read from `k_pool`'s shape
/// at run time, so one exported model serves any pool size.
pub fn build(cfg: &ModelConfig, dtype: ElemType, weights: &Weights) -> Result<Graph> {
    let mut g = Graph::new();
    let (h, kvh, hd) = (
        cfg.num_heads as i64,
        cfg.num_kv_heads as i64,
        cfg.head_dim as i64,
    );
    let groups = h / kvh;
    let n = |s: &'static str| Dim::Named(s);
    let input_ids = g.input("input_ids", ElemType::I64, vec![n("T")]);
    let positions = g.input("positions", ElemType::I64, vec![n("T")]);
    let hist_rows = g.input(
        "hist_rows",
        ElemType::I64,
        vec![Dim::Fixed(cfg.num_layers as i64), n("H")],
    );
    let kv_index = g.input("kv_index", ElemType::I64, vec![n("B"), n("Lmax")]);
    let q_index = g.input("q_index", ElemType::I64, vec![n("B"), n("Qmax")]);
    let attn_mask = g.input(
        "attn_mask",
        ElemType::F32,
        vec![n("B"), n("Qmax"), n("Lmax")],
    );
    let out_index = g.input("out_index", ElemType::I64, vec![n("T")]);
    let logit_index = g.input("logit_index", ElemType::I64, vec![n("P")]);
    let pool_dims = || vec![n("R"), Dim::Fixed(kvh), Dim::Fixed(hd)];
    let k_pool = g.input("k_pool", dtype, pool_dims());
    let v_pool = g.input("v_pool", dtype, pool_dims());

    let mut w = |g: &mut Graph, name: &str| -> Result<String> {
        let (dims, data) = weights
            .get(name)
            .with_context(|| format!("checkpoint lacks tensor {name}"))?;
        Ok(g.initializer(name, dtype, dims.clone(), data.clone()))
    };

    // The mask is built in f32 by the engine; cast once for half-precision graphs.
    let mask = from_f32(&mut g, &attn_mask, dtype);
    // [B, 1, 1, Qmax, Lmax] broadcasts over kv heads and query groups.
    let axes12 = g.const_i64(vec![2], &[1, 2]);
    let mask = g.op1("Unsqueeze", &[&mask, &axes12], vec![]);

    // Rotary tables [max positions, HD / 2], computed here in f64: a whole
    // layer's rotation is then one contrib `RotaryEmbedding` node (CPU and
    // CUDA kernels) over the new tokens seen as T batch rows of one token.
    // Not one row of T tokens: the operator rejects a sequence longer than
    // its table ("Updating cos_cache and sin_cache ... not supported"), so a
    // step of more tokens than the model has positions failed as a whole.
    let (cos, sin) = rotary_tables(&mut g, cfg, dtype);
    let ax0 = g.const_i64(vec![1], &[0]);
    let ax1 = g.const_i64(vec![1], &[1]);
    let pos_ids = g.op1("Unsqueeze", &[&positions, &ax1], vec![]);

    let embed = w(&mut g, "model.embed_tokens.weight")?;
    let mut x = g.op1(
        "Gather",
        &[&embed, &input_ids],
        vec![("axis", Attr::Int(0))],
    );

    let scale = (1.0 / (hd as f64).sqrt()) as f32;
    let scale = const_scalar(&mut g, scale, dtype);
    let q_shape = g.const_i64(vec![4], &[-1, kvh, groups, hd]);
    let q_row = g.const_i64(vec![3], &[-1, 1, h * hd]);
    let k_row = g.const_i64(vec![3], &[-1, 1, kvh * hd]);
    let kv_shape = g.const_i64(vec![3], &[-1, kvh, hd]);
    let flat_shape = g.const_i64(vec![2], &[-1, h * hd]);
    let ax2 = g.const_i64(vec![1], &[2]);
    let mut new_ks = Vec::new();
    let mut new_vs = Vec::new();

    for l in 0..cfg.num_layers {
        let p = format!("model.layers.{l}");
        let ln1 = w(&mut g, &format!("{p}.input_layernorm.weight"))?;
        let xn = rms_norm(&mut g, &x, &ln1, cfg.rms_norm_eps);
        let proj = |g: &mut Graph,
                    w: &mut dyn FnMut(&mut Graph, &str) -> Result<String>,
                    name: &str,
                    bias: bool|
         -> Result<String> {
            let wt = w(g, &format!("{p}.self_attn.{name}.weight"))?;
            Ok(if bias {
                let b = w(g, &format!("{p}.self_attn.{name}.bias"))?;
                g.op1("Gemm", &[&xn, &wt, &b], vec![("transB", Attr::Int(1))])
            } else {
                g.op1("Gemm", &[&xn, &wt], vec![("transB", Attr::Int(1))])
            })
        };
        let q = proj(&mut g, &mut w, "q_proj", cfg.attention_bias)?;
        let k = proj(&mut g, &mut w, "k_proj", cfg.attention_bias)?;
        let v = proj(&mut g, &mut w, "v_proj", cfg.attention_bias)?;
        let q = rope(&mut g, &q, &q_row, &pos_ids, &cos, &sin, h);
        let k = rope(&mut g, &k, &k_row, &pos_ids, &cos, &sin, kvh);
        let q = g.op1("Reshape", &[&q, &q_shape], vec![]);
        let k = g.op1("Reshape", &[&k, &kv_shape], vec![]);
        let v = g.op1("Reshape", &[&v, &kv_shape], vec![]);
        new_ks.push(g.op1("Unsqueeze", &[&k, &ax0], vec![]));
        new_vs.push(g.op1("Unsqueeze", &[&v, &ax0], vec![]));

        let li = g.const_i64(vec![], &[l as i64]);
        let rows = g.op1("Gather", &[&hist_rows, &li], vec![("axis", Attr::Int(0))]);
        let k_hist = g.op1("Gather", &[&k_pool, &rows], vec![("axis", Attr::Int(0))]);
        let v_hist = g.op1("Gather", &[&v_pool, &rows], vec![("axis", Attr::Int(0))]);
        let k_all = g.op1("Concat", &[&k_hist, &k], vec![("axis", Attr::Int(0))]);
        let v_all = g.op1("Concat", &[&v_hist, &v], vec![("axis", Attr::Int(0))]);
        // [B, Lmax, KVH, HD]
        let kb = g.op1("Gather", &[&k_all, &kv_index], vec![("axis", Attr::Int(0))]);
        let vb = g.op1("Gather", &[&v_all, &kv_index], vec![("axis", Attr::Int(0))]);
        // Keys [B, KVH, 1, HD, Lmax]; values [B, KVH, 1, Lmax, HD]; the size-1
        // axis broadcasts over the query groups of grouped-query attention.
        let kb = g.op1(
            "Transpose",
            &[&kb],
            vec![("perm", Attr::Ints(vec![0, 2, 3, 1]))],
        );
        let kb = g.op1("Unsqueeze", &[&kb, &ax2], vec![]);
        let vb = g.op1(
            "Transpose",
            &[&vb],
            vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))],
        );
        let vb = g.op1("Unsqueeze", &[&vb, &ax2], vec![]);
        // Queries [B, Qmax, KVH, G, HD] -> [B, KVH, G, Qmax, HD].
        let qs = g.op1("Mul", &[&q, &scale], vec![]);
        let qb = g.op1("Gather", &[&qs, &q_index], vec![("axis", Attr::Int(0))]);
        let qb = g.op1(
            "Transpose",
            &[&qb],
            vec![("perm", Attr::Ints(vec![0, 2, 3, 1, 4]))],
        );
        let scores = g.op1("MatMul", &[&qb, &kb], vec![]);
        let scores = g.op1("Add", &[&scores, &mask], vec![]);
        let probs = softmax_f32(&mut g, &scores, dtype);
        let att = g.op1("MatMul", &[&probs, &vb], vec![]);
        // Back to [B * Qmax, H * HD], head index = kv_head * G + group as in HF's repeat_kv.
        let att = g.op1(
            "Transpose",
            &[&att],
            vec![("perm", Attr::Ints(vec![0, 3, 1, 2, 4]))],
        );
        let att = g.op1("Reshape", &[&att, &flat_shape], vec![]);
        let att = g.op1("Gather", &[&att, &out_index], vec![("axis", Attr::Int(0))]);
        let wo = w(&mut g, &format!("{p}.self_attn.o_proj.weight"))?;
        let o = g.op1("Gemm", &[&att, &wo], vec![("transB", Attr::Int(1))]);
        x = g.op1("Add", &[&x, &o], vec![]);

        let ln2 = w(&mut g, &format!("{p}.post_attention_layernorm.weight"))?;
        let xn = rms_norm(&mut g, &x, &ln2, cfg.rms_norm_eps);
        let wg = w(&mut g, &format!("{p}.mlp.gate_proj.weight"))?;
        let wu = w(&mut g, &format!("{p}.mlp.up_proj.weight"))?;
        let wd = w(&mut g, &format!("{p}.mlp.down_proj.weight"))?;
        let gate = g.op1("Gemm", &[&xn, &wg], vec![("transB", Attr::Int(1))]);
        let up = g.op1("Gemm", &[&xn, &wu], vec![("transB", Attr::Int(1))]);
        let sig = g.op1("Sigmoid", &[&gate], vec![]);
        let act = g.op1("Mul", &[&gate, &sig], vec![]);
        let act = g.op1("Mul", &[&act, &up], vec![]);
        let down = g.op1("Gemm", &[&act, &wd], vec![("transB", Attr::Int(1))]);
        x = g.op1("Add", &[&x, &down], vec![]);
    }

    let xl = g.op1("Gather", &[&x, &logit_index], vec![("axis", Attr::Int(0))]);
    let norm = w(&mut g, "model.norm.weight")?;
    let xl = rms_norm(&mut g, &xl, &norm, cfg.rms_norm_eps);
    let head = if cfg.tie_word_embeddings {
        embed
    } else {
        w(&mut g, "lm_head.weight")?
    };
    let logits = g.op1("Gemm", &[&xl, &head], vec![("transB", Attr::Int(1))]);
    let logits = if dtype == ElemType::F32 {
        logits
    } else {
        cast(&mut g, &logits, ElemType::F32)
    };
    g.output(
        &logits,
        "logits",
        ElemType::F32,
        vec![n("P"), Dim::Fixed(cfg.vocab_size as i64)],
    );
    let refs: Vec<&str> = new_ks.iter().map(|s| s.as_str()).collect();
    let nk = g.op1("Concat", &refs, vec![("axis", Attr::Int(0))]);
    let refs: Vec<&str> = new_vs.iter().map(|s| s.as_str()).collect();
    let nv = g.op1("Concat", &refs, vec![("axis", Attr::Int(0))]);
    let kv_dims = || {
        vec![
            Dim::Fixed(cfg.num_layers as i64),
            n("T"),
            Dim::Fixed(kvh),
            Dim::Fixed(hd),
        ]
    };
    g.output(&nk, "new_k", dtype, kv_dims());
    g.output(&nv, "new_v", dtype, kv_dims());
    Ok(g)
}

fn cast(g: &mut Graph, x: &str, to: ElemType) -> String {
    g.op1("Cast", &[x], vec![("to", Attr::Int(to as i64))])
}

/// Casts an f32 value to the graph's dtype; a no-op for f32 graphs.
fn from_f32(g: &mut Graph, x: &str, dtype: ElemType) -> String {
    if dtype == ElemType::F32 {
        x.to_string()
    } else {
        cast(g, x, dtype)
    }
}

fn const_scalar(g: &mut Graph, v: f32, dtype: ElemType) -> String {
    let c = g.const_f32(vec![1], &[v]);
    from_f32(g, &c, dtype)
}

/// RMSNorm as ONNX Runtime's fused `SimplifiedLayerNormalization` (CPU and
/// CUDA kernels; it accumulates in f32 whatever the graph's dtype). One node
/// instead of eight: on a GPU each node costs a kernel launch, and the
/// unfused form made up a fifth of a decode step's nodes. For half-precision
/// weights it rounds once where Hugging Face rounds twice (before and after
/// the weight multiply): at most one unit in the last place.
fn rms_norm(g: &mut Graph, x: &str, weight: &str, eps: f64) -> String {
    g.op1(
        "SimplifiedLayerNormalization",
        &[x, weight],
        vec![
            ("axis", Attr::Int(-1)),
            ("epsilon", Attr::Float(eps as f32)),
            ("stash_type", Attr::Int(1)),
        ],
    )
}

/// Softmax over the last axis, in f32 for half-precision graphs.
fn softmax_f32(g: &mut Graph, x: &str, dtype: ElemType) -> String {
    if dtype == ElemType::F32 {
        return g.op1("Softmax", &[x], vec![("axis", Attr::Int(-1))]);
    }
    let xf = cast(g, x, ElemType::F32);
    let p = g.op1("Softmax", &[&xf], vec![("axis", Attr::Int(-1))]);
    cast(g, &p, dtype)
}

/// HF's rotate-half rotary embedding of `x` (`[T, heads * HD]`) at
/// `positions` (`[T, 1]`), as ONNX Runtime's contrib `RotaryEmbedding` over a
/// `[T, 1, heads * HD]` view.
fn rope(
    g: &mut Graph,
    x: &str,
    row_shape: &str,
    positions: &str,
    cos: &str,
    sin: &str,
    heads: i64,
) -> String {
    let x = g.op1("Reshape", &[x, row_shape], vec![]);
    g.op1_in(
        "com.microsoft",
        "RotaryEmbedding",
        &[&x, positions, cos, sin],
        vec![
            ("interleaved", Attr::Int(0)),
            ("num_heads", Attr::Int(heads)),
        ],
    )
}

/// `cos` and `sin` of `position * inv_freq` for every position the model
/// accepts, `[max positions, HD / 2]` in the graph's dtype. Computed in f64
/// (Hugging Face computes the angle in f32, which is off by up to 1e-2 rad
/// at position 10^5; the f64 reference is matched more closely this way).
pub(crate) fn rotary_tables(g: &mut Graph, cfg: &ModelConfig, dtype: ElemType) -> (String, String) {
    let inv = cfg.inv_freq();
    let rows = cfg.max_position_embeddings;
    let mut cos = Vec::with_capacity(rows * inv.len());
    let mut sin = Vec::with_capacity(rows * inv.len());
    for p in 0..rows {
        for &f in &inv {
            let a = p as f64 * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    let dims = vec![rows as i64, inv.len() as i64];
    let bytes = |v: &[f64]| -> Vec<u8> {
        match dtype {
            ElemType::F16 => v
                .iter()
                .flat_map(|&x| half::f16::from_f64(x).to_le_bytes())
                .collect(),
            ElemType::Bf16 => v
                .iter()
                .flat_map(|&x| half::bf16::from_f64(x).to_le_bytes())
                .collect(),
            _ => v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect(),
        }
    };
    let c = g.initializer(
        "rotary_cos",
        dtype,
        dims.clone(),
        TensorData::Inline(bytes(&cos)),
    );
    let s = g.initializer("rotary_sin", dtype, dims, TensorData::Inline(bytes(&sin)));
    (c, s)
}
