//! The model directory format: what `arbor export` writes and [`Engine::open`]
//! reads.
//!
//! A model directory holds:
//! - `model.onnx`: the forward graph in standard ops, weights as external
//!   data (the CPU's, and CUDA's for f32 models);
//! - `model.cuda.onnx` ([`CUDA_GRAPH`]), for f16 and bf16 models: the paged
//!   forward graph CUDA runs, over the same `weights.bin`;
//! - `weights.bin`: the weights in the graph's dtype, the tensors of
//!   [`expected_tensors`] in order, each 4 KiB-aligned so ONNX Runtime can map it;
//! - `tokenizer.json` and, when present, `tokenizer_config.json`;
//! - `arbor.json`: [`ModelMeta`], the shape and dtype the engine needs.
//!
//! The format lives here, not with the exporter, because the engine is its
//! reader of record: it refuses a directory whose [`FORMAT_VERSION`] or
//! `weights.bin` length ([`weights_len`]) disagrees with this module, so the
//! writer (the `arbor-export` crate) must follow it and never the reverse.
//!
//! [`Engine::open`]: crate::Engine::open

use crate::config::ModelConfig;
use arbor_onnx::ElemType;
use serde::{Deserialize, Serialize};

/// Bumped whenever the graph's interface changes, so stale directories are
/// re-exported instead of failing obscurely.
pub const FORMAT_VERSION: u32 = 3;

/// The paged CUDA graph's file name in a model directory.
pub const CUDA_GRAPH: &str = "model.cuda.onnx";

/// Tokens per KV block of the paged CUDA graph. Measured on an H200 with
/// ONNX Runtime 1.31.1, only 256-token blocks reach `PagedAttention`'s
/// FlashAttention kernel at head size 64 (6x faster at long contexts than
/// 16-128); below 16 it refuses to run.
pub const CUDA_BLOCK: usize = 256;

/// Element type of weights, KV pool and activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    /// 32-bit floats: the CPU's dtype.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl WeightDtype {
    /// The ONNX element type of tensors in this dtype.
    pub fn elem(self) -> ElemType {
        match self {
            WeightDtype::F32 => ElemType::F32,
            WeightDtype::F16 => ElemType::F16,
            WeightDtype::Bf16 => ElemType::Bf16,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            WeightDtype::F32 => 4,
            _ => 2,
        }
    }
}

/// The contents of `arbor.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelMeta {
    /// The [`FORMAT_VERSION`] the directory was written with.
    pub format_version: u32,
    /// Dtype of the weights, the KV pool and the graph's activations.
    pub dtype: WeightDtype,
    /// The model's shape and special tokens.
    pub config: ModelConfig,
    /// Where the weights came from, for the user's information.
    pub source: String,
    /// Nodes each exported graph runs per forward pass, by file name
    /// ([`arbor_onnx::Graph::step_nodes`]); empty for models exported
    /// before it was recorded.
    #[serde(default)]
    pub step_nodes: std::collections::BTreeMap<String, usize>,
}

/// Every tensor the graph needs, by Hugging Face name, with its expected
/// shape, in the order `weights.bin` stores them.
pub fn expected_tensors(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (d, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let q = cfg.num_heads * cfg.head_dim;
    let kv = cfg.num_kv_heads * cfg.head_dim;
    let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, d])];
    for l in 0..cfg.num_layers {
        let p = format!("model.layers.{l}");
        out.push((format!("{p}.input_layernorm.weight"), vec![d]));
        out.push((format!("{p}.self_attn.q_proj.weight"), vec![q, d]));
        out.push((format!("{p}.self_attn.k_proj.weight"), vec![kv, d]));
        out.push((format!("{p}.self_attn.v_proj.weight"), vec![kv, d]));
        if cfg.attention_bias {
            out.push((format!("{p}.self_attn.q_proj.bias"), vec![q]));
            out.push((format!("{p}.self_attn.k_proj.bias"), vec![kv]));
            out.push((format!("{p}.self_attn.v_proj.bias"), vec![kv]));
        }
        out.push((format!("{p}.self_attn.o_proj.weight"), vec![d, q]));
        out.push((format!("{p}.post_attention_layernorm.weight"), vec![d]));
        out.push((format!("{p}.mlp.gate_proj.weight"), vec![i, d]));
        out.push((format!("{p}.mlp.up_proj.weight"), vec![i, d]));
        out.push((format!("{p}.mlp.down_proj.weight"), vec![d, i]));
    }
    out.push(("model.norm.weight".to_string(), vec![d]));
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".to_string(), vec![v, d]));
    }
    out
}

/// Length of `weights.bin` for a model of `cfg` in `dtype`: the tensors of
/// [`expected_tensors`] in order, each 4 KiB-aligned.
pub fn weights_len(cfg: &ModelConfig, dtype: WeightDtype) -> u64 {
    expected_tensors(cfg)
        .iter()
        .fold(0u64, |offset, (_, shape)| {
            offset.next_multiple_of(4096)
                + shape.iter().product::<usize>() as u64 * dtype.size() as u64
        })
}
