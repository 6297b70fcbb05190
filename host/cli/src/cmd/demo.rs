//! `arbor demo`.

use anyhow::Result;
use arbor_engine::export::{self, WeightDtype};
use arbor_engine::generate::{GenRequest, generate};
use arbor_engine::{Engine, EngineOptions, Preset, SamplingParams};
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
        export::export_random(Preset::Tiny, 0, &a.model, WeightDtype::F32)?;
    }
    let mut engine = Engine::open(
        &a.model,
        &EngineOptions {
            kv_slots: 4096,
            ..Default::default()
        },
    )?;
    let prompts = [
        "Question: What is the capital of France? Answer:",
        "Once upon a time",
        "{\"name\": \"",
    ];
    let reqs: Vec<GenRequest> = prompts
        .iter()
        .map(|p| {
            let mut ids: Vec<u32> = engine.tokenizer().bos_id().into_iter().collect();
            ids.extend(engine.tokenizer().encode(p)?);
            Ok(GenRequest {
                prompt: ids,
                max_tokens: 24,
                sampling: SamplingParams {
                    temperature: 0.8,
                    seed: 1,
                    ..Default::default()
                },
                ignore_eos: true,
                ..Default::default()
            })
        })
        .collect::<Result<_>>()?;
    let t0 = std::time::Instant::now();
    let outs = generate(&mut engine, &reqs, 512)?;
    for (p, o) in prompts.iter().zip(&outs) {
        println!("{p:?} -> {:?}", o.text);
    }
    let s = engine.stats();
    println!(
        "{} prompts, {} forward passes, {} tokens processed, {:.1} ms (random weights: the text is noise; the machinery is real)",
        prompts.len(),
        s.forward_passes,
        s.tokens_processed,
        t0.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
