//! A plain generation loop over [`Sequences`]: several prompts decoded
//! together, prefill chunked, stop tokens and stop strings honoured.
//!
//! Serving goes through the scheduler; this loop exists only to check the
//! engine against the reference without the scheduler in between.

use crate::sequence::{Sequences, StepItem};
use anyhow::{Result, bail};
use arbor_engine::engine::{Engine, Logits};
use arbor_engine::sampling::{Sampler, SamplingParams};
use arbor_types::Finish;

/// One prompt to continue.
#[derive(Clone, Debug, Default)]
pub struct GenRequest {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop_strings: Vec<String>,
    /// Keep going past end-of-sequence tokens (benchmarks, reference tests).
    pub ignore_eos: bool,
}

/// A finished continuation.
#[derive(Clone, Debug)]
pub struct GenOutput {
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: Finish,
}

/// Continues every request, batching all of them in each forward pass.
/// `prefill_chunk` bounds how many prompt tokens one sequence sends per pass.
pub fn generate(
    engine: &mut Engine,
    reqs: &[GenRequest],
    prefill_chunk: usize,
) -> Result<Vec<GenOutput>> {
    let mut seqs = Sequences::new(engine.kv_slots());
    let eos: Vec<u32> = engine.tokenizer().eos_ids().to_vec();
    struct Live {
        id: crate::sequence::SeqId,
        sampler: Sampler,
        out: Vec<u32>,
        done: Option<Finish>,
        text: String,
    }
    let mut live = Vec::new();
    for r in reqs {
        if r.prompt.is_empty() {
            bail!("empty prompt");
        }
        r.sampling.validate().map_err(anyhow::Error::msg)?;
        if r.prompt.len() + r.max_tokens > engine.max_context() {
            bail!(
                "prompt of {} tokens plus {} new tokens exceeds the model's context of {}",
                r.prompt.len(),
                r.max_tokens,
                engine.max_context()
            );
        }
        live.push(Live {
            id: seqs.create(&r.prompt),
            sampler: Sampler::new(r.sampling.clone()),
            out: Vec::new(),
            done: if r.max_tokens == 0 {
                Some(Finish::Length)
            } else {
                None
            },
            text: String::new(),
        });
    }
    loop {
        let active: Vec<usize> = (0..live.len())
            .filter(|&i| live[i].done.is_none())
            .collect();
        if active.is_empty() {
            break;
        }
        let mut items = Vec::new();
        for &i in &active {
            let pending = seqs.pending(live[i].id)?;
            let logits = if pending <= prefill_chunk {
                Logits::Last
            } else {
                Logits::None
            };
            items.push(StepItem {
                seq: live[i].id,
                max_tokens: prefill_chunk,
                logits,
            });
        }
        let out = seqs.step(engine, &items)?;
        for (k, &i) in active.iter().enumerate() {
            let Some(row) = out.last(k) else { continue };
            let l = &mut live[i];
            let tok = l.sampler.sample(&mut row.to_vec());
            l.sampler.observe(tok);
            l.out.push(tok);
            let r = &reqs[i];
            if !r.ignore_eos && eos.contains(&tok) {
                l.out.pop();
                l.done = Some(Finish::EndOfSequence);
            } else {
                let text = engine.tokenizer().decode(&l.out);
                if let Some((offset, index)) = r
                    .stop_strings
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| Some((text.find(s.as_str())?, i)))
                    .min()
                {
                    l.text = text[..offset].to_string();
                    l.done = Some(Finish::StopString { index, offset });
                } else if l.out.len() >= r.max_tokens {
                    l.done = Some(Finish::Length);
                } else {
                    seqs.extend(l.id, &[tok])?;
                }
            }
        }
    }
    Ok(live
        .into_iter()
        .map(|l| {
            let text = if matches!(l.done, Some(Finish::StopString { .. })) {
                l.text
            } else {
                engine.tokenizer().decode(&l.out)
            };
            GenOutput {
                tokens: l.out,
                text,
                finish: l.done.unwrap_or(Finish::Length),
            }
        })
        .collect())
}
