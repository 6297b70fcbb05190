//! `arbor export`.

use super::choices::{DtypeArg, PresetArg};
use anyhow::{Result, bail};
use arbor_engine::{Preset, WeightDtype};
use std::path::PathBuf;

/// Make an Arbor model directory from a Hugging Face checkpoint or a random-weight preset.
///
/// From a checkpoint: reads config.json (model_type llama, mistral or qwen2),
/// model.safetensors or sharded safetensors with model.safetensors.index.json,
/// tokenizer.json and tokenizer_config.json, and writes model.onnx (Arbor's
/// own graph, weights as external data in weights.bin), the tokenizer and
/// arbor.json. With --random, first writes a random-weight checkpoint of the
/// preset's shape (with a byte-level BPE tokenizer Arbor trains itself) to
/// <out>/hf, then exports it.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("source").required(true))]
pub struct Args {
    /// Hugging Face checkpoint directory.
    #[arg(long, group = "source")]
    from: Option<PathBuf>,
    /// Random-weight preset.
    #[arg(long, group = "source", value_enum)]
    random: Option<PresetArg>,
    /// Seed for --random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output model directory.
    #[arg(long)]
    out: PathBuf,
    /// Weight and KV dtype: f32 for the CPU; f16 or bf16 for CUDA. Default:
    /// f32, except f16 for the GPU-sized presets.
    #[arg(long, value_enum)]
    dtype: Option<DtypeArg>,
}

pub fn run(a: Args) -> Result<()> {
    let t0 = std::time::Instant::now();
    let dtype = a.dtype.map(WeightDtype::from);
    let meta = match (a.from, a.random.map(Preset::from)) {
        (Some(from), None) => {
            arbor_export::export_from(&from, &a.out, dtype.unwrap_or(WeightDtype::F32))?
        }
        (None, Some(p)) => {
            let default = match p {
                Preset::Tiny | Preset::Small => WeightDtype::F32,
                _ => WeightDtype::F16,
            };
            arbor_export::export_random(p, a.seed, &a.out, dtype.unwrap_or(default))?
        }
        _ => bail!("give exactly one of --from and --random"),
    };
    let c = &meta.config;
    println!(
        "exported {} ({:.1}M parameters, {} layers, hidden {}, vocab {}, {:?}) to {} in {:.1}s",
        c.family.as_str(),
        c.num_params() as f64 / 1e6,
        c.num_layers,
        c.hidden_size,
        c.vocab_size,
        meta.dtype,
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
