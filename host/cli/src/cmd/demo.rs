//! `arbor demo`.

use anyhow::Result;
use arbor_engine::{Engine, EngineOptions, Preset, SamplingParams, WeightDtype};
use arbor_scheduler::{GenerateRequest, Namespace, Scheduler, SchedulerConfig};
use std::path::PathBuf;

/// Run Arbor end to end on the embedded default: makes the tiny random-weight
/// model if it is missing, then generates from a few prompts on the CPU.
#[derive(clap::Args)]
pub struct Args {
    /// Where the tiny model lives (made if missing).
    #[arg(long, default_value = "models/tiny")]
    model: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    if arbor_engine::engine::read_meta(&a.model).is_err() {
        println!(
            "making the tiny random-weight model in {} ...",
            a.model.display()
        );
        arbor_export::export_random(Preset::Tiny, 0, &a.model, WeightDtype::F32)?;
    }
    let engine = Engine::open(
        &a.model,
        &EngineOptions {
            kv_slots: 4096,
            ..Default::default()
        },
    )?;
    let tokenizer = engine.tokenizer_handle();
    let scheduler = Scheduler::start(engine, SchedulerConfig::default());
    let prompts = [
        "Question: What is the capital of France? Answer:",
        "Once upon a time",
        "{\"name\": \"",
    ];
    let t0 = std::time::Instant::now();
    let streams = prompts
        .iter()
        .map(|p| {
            let mut ids: Vec<u32> = tokenizer.bos_id().into_iter().collect();
            ids.extend(tokenizer.encode(p)?);
            let req = GenerateRequest {
                sampling: SamplingParams {
                    temperature: 0.8,
                    seed: 1,
                    ..Default::default()
                },
                ignore_eos: true,
                ..GenerateRequest::new(Namespace::PUBLIC, ids, 24)
            };
            Ok(scheduler.generate(req)?)
        })
        .collect::<Result<Vec<_>>>()?;
    for (p, st) in prompts.iter().zip(streams) {
        let g = st.blocking_collect()?;
        println!("{p:?} -> {:?}", g.text);
    }
    let s = scheduler.stats();
    println!(
        "{} prompts, {} forward passes, {} tokens processed, {:.1} ms (random weights: the text is noise; the machinery is real)",
        prompts.len(),
        s.steps,
        s.prefill_tokens + s.decode_tokens,
        t0.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
