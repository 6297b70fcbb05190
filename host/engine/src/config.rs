//! The model's shape, read from a Hugging Face `config.json` or a named preset.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The architecture families Arbor's graph covers: decoder-only transformers
/// with RMSNorm, rotary embeddings, grouped-query attention and a SwiGLU MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Llama,
    Mistral,
    Qwen2,
}

impl Family {
    fn parse(model_type: &str) -> Result<Self> {
        Ok(match model_type {
            "llama" => Family::Llama,
            "mistral" => Family::Mistral,
            "qwen2" => Family::Qwen2,
            other => bail!(
                "unsupported model_type {other:?} in config.json (supported: llama, mistral, qwen2)"
            ),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Mistral => "mistral",
            Family::Qwen2 => "qwen2",
        }
    }
}

/// Everything about the model's shape that the graph and the engine need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Llama-3-style frequency scaling or linear scaling, applied to the
    /// inverse frequencies at export.
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Biases on the q, k and v projections (Qwen2).
    pub attention_bias: bool,
    /// Mistral's sliding attention window, enforced by the engine's mask.
    pub sliding_window: Option<usize>,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

/// Rotary embedding scaling variants found in Llama-family configs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RopeScaling {
    Linear {
        factor: f64,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

impl ModelConfig {
    /// Reads and validates a Hugging Face `config.json`.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        Self::from_hf_json(&v).with_context(|| format!("in {}", path.display()))
    }

    /// Interprets the fields of a Hugging Face config as `transformers` writes them.
    pub fn from_hf_json(v: &serde_json::Value) -> Result<Self> {
        let model_type = v
            .get("model_type")
            .and_then(|x| x.as_str())
            .context("config.json has no model_type")?;
        let family = Family::parse(model_type)?;
        let req = |k: &str| -> Result<usize> {
            let n = v
                .get(k)
                .and_then(|x| x.as_u64())
                .with_context(|| format!("config.json lacks integer field {k}"))?;
            if n == 0 || n > (1 << 24) {
                bail!("config.json field {k} = {n} is out of range");
            }
            Ok(n as usize)
        };
        let opt_f = |k: &str| v.get(k).and_then(|x| x.as_f64());
        let hidden_size = req("hidden_size")?;
        let num_heads = req("num_attention_heads")?;
        let num_kv_heads = v
            .get("num_key_value_heads")
            .and_then(|x| x.as_u64())
            .map(|x| x as usize)
            .unwrap_or(num_heads);
        let head_dim = match v.get("head_dim").and_then(|x| x.as_u64()) {
            Some(h) => h as usize,
            None => {
                if !hidden_size.is_multiple_of(num_heads) {
                    bail!(
                        "hidden_size {hidden_size} is not divisible by num_attention_heads {num_heads}"
                    );
                }
                hidden_size / num_heads
            }
        };
        let rope_scaling = match v.get("rope_scaling").filter(|x| !x.is_null()) {
            None => None,
            Some(rs) => {
                let kind = rs
                    .get("rope_type")
                    .or_else(|| rs.get("type"))
                    .and_then(|x| x.as_str())
                    .unwrap_or("default");
                let f = |k: &str| {
                    rs.get(k)
                        .and_then(|x| x.as_f64())
                        .with_context(|| format!("rope_scaling lacks {k}"))
                };
                match kind {
                    "default" => None,
                    "linear" => Some(RopeScaling::Linear {
                        factor: f("factor")?,
                    }),
                    "llama3" => Some(RopeScaling::Llama3 {
                        factor: f("factor")?,
                        low_freq_factor: f("low_freq_factor")?,
                        high_freq_factor: f("high_freq_factor")?,
                        original_max_position_embeddings: f("original_max_position_embeddings")?,
                    }),
                    other => {
                        bail!("unsupported rope_scaling type {other:?} (supported: linear, llama3)")
                    }
                }
            }
        };
        let eos_token_ids = match v.get("eos_token_id") {
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().map(|x| vec![x as u32]).unwrap_or_default()
            }
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u32)
                .collect(),
            _ => vec![],
        };
        let cfg = ModelConfig {
            family,
            vocab_size: req("vocab_size")?,
            hidden_size,
            intermediate_size: req("intermediate_size")?,
            num_layers: req("num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: opt_f("rms_norm_eps").unwrap_or(1e-6),
            rope_theta: opt_f("rope_theta").unwrap_or(10000.0),
            rope_scaling,
            max_position_embeddings: v
                .get("max_position_embeddings")
                .and_then(|x| x.as_u64())
                .unwrap_or(4096) as usize,
            tie_word_embeddings: v
                .get("tie_word_embeddings")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            attention_bias: v
                .get("attention_bias")
                .and_then(|x| x.as_bool())
                .unwrap_or(family == Family::Qwen2),
            sliding_window: if family == Family::Mistral {
                v.get("sliding_window")
                    .and_then(|x| x.as_u64())
                    .map(|x| x as usize)
            } else {
                None
            },
            bos_token_id: v
                .get("bos_token_id")
                .and_then(|x| x.as_u64())
                .map(|x| x as u32),
            eos_token_ids,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the relations between fields that the graph relies on.
    pub fn validate(&self) -> Result<()> {
        // Zeros would divide by zero below or build empty tensors; config.json
        // names are used since that is where users can fix them.
        for (name, v) in [
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
            ("sliding_window", self.sliding_window.unwrap_or(1)),
        ] {
            if v == 0 {
                bail!("config.json field {name} must be positive");
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            bail!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_heads,
                self.num_kv_heads
            );
        }
        if !self.head_dim.is_multiple_of(2) {
            bail!(
                "head_dim {} must be even for rotary embeddings",
                self.head_dim
            );
        }
        if let Some(b) = self.bos_token_id
            && b as usize >= self.vocab_size
        {
            bail!(
                "bos_token_id {b} is outside the vocabulary ({})",
                self.vocab_size
            );
        }
        Ok(())
    }

    /// Writes the config as `transformers` would, for checkpoints Arbor makes.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "architectures": [match self.family {
                Family::Llama => "LlamaForCausalLM",
                Family::Mistral => "MistralForCausalLM",
                Family::Qwen2 => "Qwen2ForCausalLM",
            }],
            "model_type": self.family.as_str(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": self.attention_bias,
            "torch_dtype": "float32",
        });
        if let Some(b) = self.bos_token_id {
            v["bos_token_id"] = b.into();
        }
        v["eos_token_id"] = match self.eos_token_ids.as_slice() {
            [one] => (*one).into(),
            many => many.to_vec().into(),
        };
        if let Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) = &self.rope_scaling
        {
            v["rope_scaling"] = serde_json::json!({
                "rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": original_max_position_embeddings,
            });
        }
        if let Some(RopeScaling::Linear { factor }) = &self.rope_scaling {
            v["rope_scaling"] = serde_json::json!({ "rope_type": "linear", "factor": factor });
        }
        v
    }

    /// The rotary inverse frequencies, `head_dim / 2` of them, scaling applied.
    pub fn inv_freq(&self) -> Vec<f64> {
        let half = self.head_dim / 2;
        let base: Vec<f64> = (0..half)
            .map(|i| 1.0 / self.rope_theta.powf((2 * i) as f64 / self.head_dim as f64))
            .collect();
        match &self.rope_scaling {
            None => base,
            Some(RopeScaling::Linear { factor }) => base.iter().map(|f| f / factor).collect(),
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                let low_wavelen = original_max_position_embeddings / low_freq_factor;
                let high_wavelen = original_max_position_embeddings / high_freq_factor;
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (original_max_position_embeddings / wavelen
                                - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }

    /// Number of parameters, for progress and sanity messages.
    pub fn num_params(&self) -> u64 {
        let (d, i, v) = (
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.vocab_size as u64,
        );
        let q = (self.num_heads * self.head_dim) as u64;
        let kv = (self.num_kv_heads * self.head_dim) as u64;
        let layer = d * q * 2 + d * kv * 2 + 3 * d * i + 2 * d;
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + head + d + layer * self.num_layers as u64
    }
}

/// Named random-model sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// A few MB: tests and the demo.
    Tiny,
    /// About 25M parameters: CPU benchmarks.
    Small,
    /// The shape of Llama-3.2-1B (float16 by default): GPU benchmarks.
    Llama32_1b,
    /// The shape of Llama-2-7B (float16 by default): GPU benchmarks.
    Llama2_7b,
}

impl Preset {
    /// The model shape and the size of the byte-level BPE vocabulary Arbor trains for it.
    pub fn config(self) -> ModelConfig {
        let base = ModelConfig {
            family: Family::Llama,
            vocab_size: 512,
            hidden_size: 64,
            intermediate_size: 172,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 16,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
            rope_scaling: None,
            max_position_embeddings: 2048,
            tie_word_embeddings: false,
            attention_bias: false,
            sliding_window: None,
            bos_token_id: None,
            eos_token_ids: vec![],
        };
        match self {
            Preset::Tiny => ModelConfig {
                num_layers: 4,
                hidden_size: 128,
                intermediate_size: 352,
                head_dim: 32,
                ..base
            },
            Preset::Small => ModelConfig {
                vocab_size: 4096,
                hidden_size: 512,
                intermediate_size: 1408,
                num_layers: 6,
                num_heads: 8,
                num_kv_heads: 4,
                head_dim: 64,
                max_position_embeddings: 4096,
                ..base
            },
            Preset::Llama32_1b => ModelConfig {
                vocab_size: 128256,
                hidden_size: 2048,
                intermediate_size: 8192,
                num_layers: 16,
                num_heads: 32,
                num_kv_heads: 8,
                head_dim: 64,
                rope_theta: 500000.0,
                rope_scaling: Some(RopeScaling::Llama3 {
                    factor: 32.0,
                    low_freq_factor: 1.0,
                    high_freq_factor: 4.0,
                    original_max_position_embeddings: 8192.0,
                }),
                max_position_embeddings: 131072,
                tie_word_embeddings: true,
                ..base
            },
            Preset::Llama2_7b => ModelConfig {
                vocab_size: 32000,
                hidden_size: 4096,
                intermediate_size: 11008,
                num_layers: 32,
                num_heads: 32,
                num_kv_heads: 32,
                head_dim: 128,
                max_position_embeddings: 4096,
                ..base
            },
        }
    }

    /// Vocabulary size of the tokenizer Arbor trains for this preset (≤ the model's).
    pub fn tokenizer_vocab(self) -> usize {
        match self {
            Preset::Tiny => 512,
            _ => 4096,
        }
    }
}
