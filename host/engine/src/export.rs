//! `arbor export`: turns a Hugging Face checkpoint, or a random-weight preset,
//! into an Arbor model directory.
//!
//! A model directory holds:
//! - `model.onnx`: the forward graph (see [`crate::graph`]), weights as external data;
//! - `weights.bin`: the weights in the graph's dtype, each tensor 4 KiB-aligned
//!   so ONNX Runtime can map it;
//! - `tokenizer.json` and, when present, `tokenizer_config.json`;
//! - `arbor.json`: [`ModelMeta`], the shape and dtype the engine needs.

use crate::checkpoint::{Checkpoint, RawTensor, expected_tensors, to_f32, write_safetensors};
use crate::config::{ModelConfig, Preset};
use crate::graph;
use crate::onnx::{ElemType, TensorData};
use anyhow::{Context, Result, bail};
use safetensors::Dtype;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// Bumped whenever the graph's interface changes, so stale directories are
/// re-exported instead of failing obscurely.
pub const FORMAT_VERSION: u32 = 2;

/// Element type of weights, KV pool and activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    F32,
    F16,
    Bf16,
}

impl WeightDtype {
    pub fn elem(self) -> ElemType {
        match self {
            WeightDtype::F32 => ElemType::F32,
            WeightDtype::F16 => ElemType::F16,
            WeightDtype::Bf16 => ElemType::Bf16,
        }
    }

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
    pub format_version: u32,
    pub dtype: WeightDtype,
    pub config: ModelConfig,
    /// Where the weights came from, for the user's information.
    pub source: String,
}

/// Reports progress of long exports on stderr.
fn progress(done: u64, total: u64, label: &str) {
    if total >= 256 << 20 {
        eprint!(
            "\r{label}: {:.1} / {:.1} GB",
            done as f64 / 1e9,
            total as f64 / 1e9
        );
        if done == total {
            eprintln!();
        }
    }
}

/// Exports a Hugging Face checkpoint directory into `out`.
pub fn export_from(hf: &Path, out: &Path, dtype: WeightDtype) -> Result<ModelMeta> {
    if !hf.is_dir() {
        bail!("{} is not a directory", hf.display());
    }
    let cfg = ModelConfig::from_hf_file(&hf.join("config.json"))?;
    if !hf.join("tokenizer.json").exists() {
        bail!(
            "{} is missing (Arbor needs the fast tokenizer file)",
            hf.join("tokenizer.json").display()
        );
    }
    // Loaded once here so a broken tokenizer fails the export, not every later run.
    crate::tokenizer::Tokenizer::load(hf, &cfg.eos_token_ids, cfg.bos_token_id)?;
    let ckpt = Checkpoint::open(hf)?;
    ckpt.validate(&cfg)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    let tensors = expected_tensors(&cfg);
    let total: u64 = tensors
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64 * dtype.size() as u64)
        .sum();
    let wpath = out.join("weights.bin");
    let f = std::fs::File::create(&wpath)
        .with_context(|| format!("cannot create {}", wpath.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 22, f);
    let mut weights = graph::Weights::new();
    let mut offset = 0u64;
    let mut buf = Vec::new();
    for (name, shape) in &tensors {
        let t = ckpt.tensor(name)?;
        buf.clear();
        convert(&t, dtype, &mut buf)?;
        let pad = offset.next_multiple_of(4096) - offset;
        w.write_all(&vec![0u8; pad as usize])?;
        offset += pad;
        w.write_all(&buf)?;
        let dims = shape.iter().map(|&d| d as i64).collect();
        weights.insert(
            name.clone(),
            (
                dims,
                TensorData::External {
                    location: "weights.bin".into(),
                    offset,
                    length: buf.len() as u64,
                },
            ),
        );
        offset += buf.len() as u64;
        progress(offset.min(total), total, "export");
    }
    w.flush()?;
    progress(total, total, "export");

    let g = graph::build(&cfg, dtype.elem(), &weights)?;
    let bytes = g.to_model_bytes(
        graph::OPSET,
        "arbor",
        &format!("{} exported by arbor", cfg.family.as_str()),
    );
    std::fs::write(out.join("model.onnx"), bytes)?;
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        let src = hf.join(f);
        if src.exists() {
            std::fs::copy(&src, out.join(f))
                .with_context(|| format!("cannot copy {}", src.display()))?;
        }
    }
    let meta = ModelMeta {
        format_version: FORMAT_VERSION,
        dtype,
        config: cfg,
        source: std::fs::canonicalize(hf)
            .unwrap_or(hf.to_path_buf())
            .display()
            .to_string(),
    };
    // Written last: a directory with arbor.json is complete.
    std::fs::write(out.join("arbor.json"), serde_json::to_string_pretty(&meta)?)?;
    Ok(meta)
}

/// Length of `weights.bin` for a model of `cfg` in `dtype`, as [`export_from`]
/// lays it out: the tensors of [`expected_tensors`] in order, each 4 KiB-aligned.
pub fn weights_len(cfg: &ModelConfig, dtype: WeightDtype) -> u64 {
    expected_tensors(cfg)
        .iter()
        .fold(0u64, |offset, (_, shape)| {
            offset.next_multiple_of(4096)
                + shape.iter().product::<usize>() as u64 * dtype.size() as u64
        })
}

fn convert(t: &RawTensor, dtype: WeightDtype, out: &mut Vec<u8>) -> Result<()> {
    let same = matches!(
        (t.dtype, dtype),
        (Dtype::F32, WeightDtype::F32)
            | (Dtype::F16, WeightDtype::F16)
            | (Dtype::BF16, WeightDtype::Bf16)
    );
    if same {
        out.extend_from_slice(t.data);
        return Ok(());
    }
    let vals = to_f32(t)?;
    match dtype {
        WeightDtype::F32 => out.extend(vals.iter().flat_map(|v| v.to_le_bytes())),
        WeightDtype::F16 => out.extend(
            vals.iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes()),
        ),
        WeightDtype::Bf16 => out.extend(
            vals.iter()
                .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()),
        ),
    }
    Ok(())
}

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
