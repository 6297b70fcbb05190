//! `arbor export --from`: a Hugging Face checkpoint directory becomes an
//! Arbor model directory, laid out as [`arbor_engine::format`] says.
//!
//! The checkpoint is validated against its config (every tensor present, the
//! right shape and a float dtype) before anything is written, the weights are
//! streamed into `weights.bin` one tensor at a time (multi-GB checkpoints never
//! sit in memory), and `arbor.json` is written last, so that a directory with
//! `arbor.json` is complete.

use crate::checkpoint::{Checkpoint, RawTensor, to_f32};
use crate::graph;
use anyhow::{Context, Result, bail};
use arbor_engine::format::{FORMAT_VERSION, ModelMeta, WeightDtype, expected_tensors};
use arbor_engine::{ModelConfig, Tokenizer};
use arbor_onnx::TensorData;
use safetensors::Dtype;
use std::io::Write;
use std::path::Path;

/// Reports progress of long exports on stderr.
pub(crate) fn progress(done: u64, total: u64, label: &str) {
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
    Tokenizer::load(hf, &cfg.eos_token_ids, cfg.bos_token_id)?;
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

    let mut step_nodes = std::collections::BTreeMap::new();
    let g = graph::build(&cfg, dtype.elem(), &weights)?;
    step_nodes.insert("model.onnx".to_string(), g.step_nodes());
    let bytes = g.to_model_bytes(
        arbor_onnx::OPSET,
        "arbor",
        &format!("{} exported by arbor", cfg.family.as_str()),
    );
    std::fs::write(out.join("model.onnx"), bytes)?;
    // Half-precision models also get the CUDA graph (PagedAttention has no
    // f32 kernel); an f32 model runs the standard graph on either device.
    if dtype != WeightDtype::F32 {
        let g = crate::paged::build(&cfg, dtype.elem(), &weights)?;
        step_nodes.insert(arbor_engine::format::CUDA_GRAPH.to_string(), g.step_nodes());
        let bytes = g.to_model_bytes(
            arbor_onnx::OPSET,
            "arbor",
            &format!("{} exported by arbor, paged for CUDA", cfg.family.as_str()),
        );
        std::fs::write(out.join(arbor_engine::format::CUDA_GRAPH), bytes)?;
    } else {
        // A re-export in place must not leave a stale graph of other weights.
        let _ = std::fs::remove_file(out.join(arbor_engine::format::CUDA_GRAPH));
    }
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
        step_nodes,
    };
    // Written last: a directory with arbor.json is complete.
    std::fs::write(out.join("arbor.json"), serde_json::to_string_pretty(&meta)?)?;
    Ok(meta)
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
