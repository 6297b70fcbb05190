//! `arbor export --random`: random-weight models of a [`Preset`]'s shape, for
//! tests, the demo and benchmarks.
//!
//! A random model is made as a real Hugging Face checkpoint first (config,
//! safetensors, a trained tokenizer) and then exported like any other, so it
//! exercises the whole export path and independent tools (the reference
//! forward pass in the tests) can read the same weights. Weights are a pure
//! function of preset, seed and dtype, and the tokenizer of the preset alone.

use crate::checkpoint::write_safetensors;
use crate::export::{export_from, progress};
use anyhow::{Context, Result};
use arbor_engine::format::{ModelMeta, WeightDtype, expected_tensors};
use arbor_engine::{ModelConfig, Preset};
use safetensors::Dtype;
use std::path::Path;

/// Writes a random-weight Hugging Face checkpoint of `preset` into `dir`
/// (config.json, model.safetensors, tokenizer.json, tokenizer_config.json).
///
/// The scale of each tensor is chosen so that logits spread over several
/// units: a random model with near-uniform logits would make greedy decoding
/// hinge on rounding noise, and tests compare greedy outputs exactly.
pub fn write_random_checkpoint(
    preset: Preset,
    seed: u64,
    dtype: WeightDtype,
    dir: &Path,
) -> Result<ModelConfig> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::tokenizer::train_byte_level_bpe(dir, preset.tokenizer_vocab())?;
    let mut cfg = preset.config();
    cfg.bos_token_id = Some(0);
    cfg.eos_token_ids = vec![1, 4];
    let mut hf = cfg.to_hf_json();
    hf["torch_dtype"] = match dtype {
        WeightDtype::F32 => "float32",
        WeightDtype::F16 => "float16",
        WeightDtype::Bf16 => "bfloat16",
    }
    .into();
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&hf)?)?;
    let st_dtype = match dtype {
        WeightDtype::F32 => Dtype::F32,
        WeightDtype::F16 => Dtype::F16,
        WeightDtype::Bf16 => Dtype::BF16,
    };
    let tensors = expected_tensors(&cfg);
    let layout: Vec<_> = tensors
        .iter()
        .map(|(n, s)| (n.clone(), s.clone(), st_dtype))
        .collect();
    let total: u64 = tensors
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64 * dtype.size() as u64)
        .sum();
    let mut done = 0u64;
    write_safetensors(&dir.join("model.safetensors"), &layout, |i, buf| {
        let (name, shape) = &tensors[i];
        let n: usize = shape.iter().product();
        let (center, half_width) = init_range(name, shape, &cfg);
        let mut rng = SplitMix(seed ^ fnv1a(name.as_bytes()));
        buf.reserve(n * dtype.size());
        for _ in 0..n {
            let v = center + half_width * rng.unit();
            match dtype {
                WeightDtype::F32 => buf.extend_from_slice(&v.to_le_bytes()),
                WeightDtype::F16 => buf.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
                WeightDtype::Bf16 => buf.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
            }
        }
        done += buf.len() as u64;
        progress(done, total, "random weights");
        Ok(())
    })?;
    Ok(cfg)
}

/// Center and half-width of the uniform distribution for one tensor.
fn init_range(name: &str, shape: &[usize], cfg: &ModelConfig) -> (f32, f32) {
    // A uniform on [-a, a] has standard deviation a / sqrt(3).
    let std_to_a = 3f32.sqrt();
    if name.ends_with("layernorm.weight") || name == "model.norm.weight" {
        return (1.0, 0.2);
    }
    if name.ends_with(".bias") {
        return (0.0, 0.1);
    }
    if name == "model.embed_tokens.weight" && !cfg.tie_word_embeddings {
        return (0.0, std_to_a);
    }
    if name == "lm_head.weight" || name == "model.embed_tokens.weight" {
        // Logit standard deviation of about 4 for unit-RMS hidden states.
        return (0.0, 4.0 * std_to_a / (cfg.hidden_size as f32).sqrt());
    }
    let fan_in = *shape.last().unwrap_or(&1) as f32;
    (0.0, std_to_a / fan_in.sqrt())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// SplitMix64: fast enough to fill billions of weights in seconds, and
/// trivially reproducible in any language from the seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Makes a random-weight model directory of `preset`: the Hugging Face
/// checkpoint goes to `out/hf` (so independent tools, like the reference
/// forward pass in the tests, can read the same weights), the model beside it.
pub fn export_random(
    preset: Preset,
    seed: u64,
    out: &Path,
    dtype: WeightDtype,
) -> Result<ModelMeta> {
    let hf = out.join("hf");
    write_random_checkpoint(preset, seed, dtype, &hf)?;
    export_from(&hf, out, dtype)
}
