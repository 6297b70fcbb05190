//! `arbor generate`.

use anyhow::{Context, Result, bail};
use arbor_engine::{Device, Engine, EngineOptions, SamplingParams};
use arbor_scheduler::{Constraint, GenerateRequest, Namespace, Scheduler, SchedulerConfig};
use std::path::PathBuf;

/// Continue a prompt with a model directory (greedy with --temperature 0).
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("prompt_source").required(true))]
pub struct Args {
    /// Model directory made by `arbor export`.
    #[arg(long)]
    model: PathBuf,
    /// Prompt text (the model's BOS token is prepended when it has one).
    #[arg(long, group = "prompt_source")]
    prompt: Option<String>,
    /// Prompt as comma-separated token ids, used as given.
    #[arg(long, group = "prompt_source", value_delimiter = ',')]
    prompt_ids: Option<Vec<u32>>,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    frequency_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    presence_penalty: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop before this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Keep generating past end-of-sequence tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Print the continuation as comma-separated token ids.
    #[arg(long)]
    ids: bool,
    /// Run on this CUDA device instead of the CPU.
    #[arg(long)]
    cuda: Option<i32>,
    /// Constrain the output to match this regex.
    #[arg(long, conflicts_with = "json_schema")]
    regex: Option<String>,
    /// Constrain the output to JSON valid under the JSON Schema in this file.
    #[arg(long)]
    json_schema: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let opts = EngineOptions {
        device: Device::cuda_or_cpu(a.cuda),
        kv_slots: 0,
        ..Default::default()
    };
    let meta = arbor_engine::engine::read_meta(&a.model)?;
    let opts = EngineOptions {
        kv_slots: meta.config.max_position_embeddings.min(65536),
        ..opts
    };
    let engine = Engine::open(&a.model, &opts)?;
    let prompt = match (a.prompt, a.prompt_ids) {
        (Some(text), None) => {
            let mut ids: Vec<u32> = engine.tokenizer().bos_id().into_iter().collect();
            ids.extend(engine.tokenizer().encode(&text)?);
            ids
        }
        (None, Some(ids)) => ids,
        _ => bail!("give exactly one of --prompt and --prompt-ids"),
    };
    if prompt.is_empty() {
        bail!("the prompt is empty");
    }
    let sampling = SamplingParams {
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repetition_penalty: a.repetition_penalty,
        frequency_penalty: a.frequency_penalty,
        presence_penalty: a.presence_penalty,
        seed: a.seed,
    };
    let constraint = match (a.regex, a.json_schema) {
        (Some(r), _) => Some(Constraint::Regex(r)),
        (None, Some(path)) => Some(Constraint::JsonSchema(
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        )),
        (None, None) => None,
    };
    if prompt.len() + a.max_tokens > engine.max_context() {
        bail!(
            "prompt of {} tokens plus {} new tokens exceeds the model's context of {}",
            prompt.len(),
            a.max_tokens,
            engine.max_context()
        );
    }
    let scheduler = Scheduler::start(engine, SchedulerConfig::default());
    let mut req = GenerateRequest::new(Namespace::PUBLIC, prompt, a.max_tokens);
    req.sampling = sampling;
    req.stop_strings = a.stop;
    req.ignore_eos = a.ignore_eos;
    req.constraint = constraint;
    let out = scheduler.generate(req)?.blocking_collect()?;
    if a.ids {
        let s: Vec<String> = out.tokens.iter().map(|t| t.to_string()).collect();
        println!("{}", s.join(","));
    } else {
        println!("{}", out.text);
    }
    Ok(())
}
