//! `arbor bench json`: JSON decoding under a schema, jump-forward on vs off.

use anyhow::Result;
use arbor_engine::{Engine, EngineOptions, Preset, SamplingParams, WeightDtype};
use arbor_scheduler::{Constraint, GenerateRequest, Namespace, Scheduler, SchedulerConfig};
use std::path::PathBuf;
use std::time::Instant;

/// The schema decoded: several typed fields, as an extraction task would use.
const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 12},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "city": {"type": "string", "maxLength": 12},
    "email": {"type": "string", "format": "email"},
    "member": {"type": "boolean"},
    "plan": {"enum": ["free", "pro", "enterprise"]},
    "score": {"type": "number"}
  },
  "required": ["name", "age", "city", "email", "member", "plan", "score"]
}"#;

/// Options of the JSON decoding benchmark.
#[derive(clap::Args)]
pub struct JsonArgs {
    /// Model directory; default: the tiny preset under models/tiny (made if missing).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Requests per run.
    #[arg(long, default_value_t = 32)]
    requests: usize,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

struct Run {
    outputs_per_s: f64,
    tokens_per_output: f64,
    sampled_per_output: f64,
    passes: u64,
    mask_p50: f64,
    mask_p99: f64,
    valid: usize,
}

pub fn run(a: JsonArgs) -> Result<()> {
    let model = match a.model {
        Some(m) => m,
        None => {
            let m = PathBuf::from("models/tiny");
            if arbor_engine::engine::read_meta(&m).is_err() {
                arbor_export::export_random(Preset::Tiny, 0, &m, WeightDtype::F32)?;
            }
            m
        }
    };
    let mut engine = Engine::open(
        &model,
        &EngineOptions {
            kv_slots: 32768,
            ..Default::default()
        },
    )?;
    let mut runs = Vec::new();
    // Warm-up first (untimed), then jump-forward on and off with the same requests.
    for (i, jf) in [true, true, false].into_iter().enumerate() {
        let s = Scheduler::start(
            engine,
            SchedulerConfig {
                jump_forward: jf,
                ..Default::default()
            },
        );
        let t0 = Instant::now();
        let streams = (0..a.requests)
            .map(|k| {
                let mut p = vec![0u32];
                p.extend((0..24).map(|j| 5 + ((k * 31 + j * 7) % 400) as u32));
                let mut r = GenerateRequest::new(Namespace::tenant(1), p, 256);
                r.constraint = Some(Constraint::JsonSchema(SCHEMA.into()));
                r.sampling = SamplingParams {
                    temperature: 0.7,
                    seed: k as u64,
                    ..Default::default()
                };
                s.generate(r)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut tokens = 0;
        let mut valid = 0;
        for st in streams {
            let g = st.blocking_collect()?;
            tokens += g.tokens.len();
            valid += serde_json::from_str::<serde_json::Value>(&g.text).is_ok() as usize;
        }
        let secs = t0.elapsed().as_secs_f64();
        let st = s.stats();
        if i > 0 {
            runs.push(Run {
                outputs_per_s: a.requests as f64 / secs,
                tokens_per_output: tokens as f64 / a.requests as f64,
                sampled_per_output: st.constrained_sampled_tokens as f64 / a.requests as f64,
                passes: st.steps,
                mask_p50: st.mask_us_p50,
                mask_p99: st.mask_us_p99,
                valid,
            });
        }
        engine = s.shutdown()?;
    }
    let (on, off) = (&runs[0], &runs[1]);
    let report = serde_json::json!({
        "workload": "json",
        "requests": a.requests,
        "vocab": engine.config().vocab_size,
        "throughput_jump_forward_on": on.outputs_per_s,
        "throughput_jump_forward_off": off.outputs_per_s,
        "ratio": on.outputs_per_s / off.outputs_per_s,
        "tokens_per_output_on": on.tokens_per_output,
        "tokens_per_output_off": off.tokens_per_output,
        "decoded_tokens_per_output_on": on.sampled_per_output,
        "decoded_tokens_per_output_off": off.sampled_per_output,
        "forward_passes_on": on.passes,
        "forward_passes_off": off.passes,
        "mask_us_p50": on.mask_p50,
        "mask_us_p99": on.mask_p99,
        "valid_json_on": on.valid,
        "valid_json_off": off.valid,
    });
    if a.json {
        println!("{report}");
    } else {
        println!(
            "json: outputs/s jump-forward on {:.2} off {:.2} ratio {:.2}x | tokens/output {:.1} vs {:.1}, decoded (sampled) tokens/output {:.1} vs {:.1} | forward passes {} vs {} | mask µs p50 {:.2} p99 {:.2} (vocab {}) | valid JSON {}/{} and {}/{}",
            on.outputs_per_s,
            off.outputs_per_s,
            on.outputs_per_s / off.outputs_per_s,
            on.tokens_per_output,
            off.tokens_per_output,
            on.sampled_per_output,
            off.sampled_per_output,
            on.passes,
            off.passes,
            on.mask_p50,
            on.mask_p99,
            engine.config().vocab_size,
            on.valid,
            a.requests,
            off.valid,
            a.requests
        );
    }
    Ok(())
}
