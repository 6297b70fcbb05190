//! `arbor run`.

use anyhow::{Context, Result, bail};
use arbor_backend::SchedulerBackend;
use arbor_engine::{Device, Engine, EngineOptions};
use arbor_runtime::{Limits, Namespace, RunOptions, Runtime, RuntimeConfig};
use arbor_scheduler::{Scheduler, SchedulerConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// Run an LLM program (a WebAssembly component of the arbor:lm world) locally
/// against a model, and print its output and statistics.
#[derive(clap::Args)]
pub struct Args {
    /// The program: a .wasm component (build Rust guests with
    /// `cargo build --target wasm32-wasip2 --release`).
    program: PathBuf,
    /// Model directory made by `arbor export`.
    #[arg(long)]
    model: PathBuf,
    /// The program's input (usually JSON).
    #[arg(long, default_value = "{}")]
    input: String,
    /// Wall-clock limit of the run, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    deadline_ms: u64,
    /// KV pool slots (0 on CUDA: --kv-fraction of the device memory free
    /// after the model loads).
    #[arg(long, default_value_t = 16384)]
    kv_slots: usize,
    /// With --kv-slots 0 on CUDA, the share of free device memory the KV pool takes.
    #[arg(long, default_value_t = arbor_engine::engine::DEFAULT_KV_FRACTION)]
    kv_fraction: f32,
    /// Run the model on this CUDA device instead of the CPU.
    #[arg(long)]
    cuda: Option<i32>,
    /// Where compiled programs are kept, so that a program is compiled
    /// once, not at every run (seconds for Python and JavaScript guests,
    /// which embed an interpreter). Default: $XDG_CACHE_HOME/arbor/compiled
    /// or ~/.cache/arbor/compiled.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Compile the program afresh and keep nothing.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

/// The default compile cache of `arbor run`, if the environment names a home.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("arbor").join("compiled"))
}

pub fn run(a: Args) -> Result<()> {
    let bytes = std::fs::read(&a.program)
        .with_context(|| format!("cannot read {}", a.program.display()))?;
    let engine = Engine::open(
        &a.model,
        &EngineOptions {
            kv_slots: a.kv_slots,
            kv_fraction: a.kv_fraction,
            device: Device::cuda_or_cpu(a.cuda),
            ..Default::default()
        },
    )?;
    let scheduler = Scheduler::start(engine, SchedulerConfig::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let t0 = std::time::Instant::now();
    let outcome = rt.block_on(async {
        let cache_dir = if a.no_cache {
            None
        } else {
            a.cache_dir.clone().or_else(default_cache_dir)
        };
        let config = RuntimeConfig {
            cache_dir,
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::new(config, Arc::new(SchedulerBackend::new(scheduler.clone())))?;
        let program = runtime.load(&bytes)?;
        let limits = Limits {
            deadline: std::time::Duration::from_millis(a.deadline_ms),
            ..Limits::default()
        };
        let opts = RunOptions {
            namespace: Namespace::tenant(1),
            limits,
            ..RunOptions::default()
        };
        anyhow::Ok(runtime.run(&program, &a.input, opts).await)
    });
    // The run's tasks (and their requests) die with the tokio runtime; then
    // the scheduler stops between two steps and the engine is dropped here.
    // Exiting while a forward pass runs tears ONNX Runtime down under it
    // (it printed "GetElementType is not implemented" after a deadline).
    drop(rt);
    let st = scheduler.stats();
    if let Ok(engine) = scheduler.shutdown() {
        drop(engine);
    }
    let outcome = outcome?;
    if !outcome.log.is_empty() {
        eprint!("{}", outcome.log);
        if outcome.log_truncated {
            eprintln!("[log truncated]");
        }
    }
    let stats = serde_json::json!({
        "wall_ms": t0.elapsed().as_secs_f64() * 1e3,
        "run": outcome.stats,
        "engine_steps": st.steps,
        "prefill_tokens": st.prefill_tokens,
        "decode_tokens": st.decode_tokens,
        "cache_hit_tokens": st.cache.hit_tokens,
        "cache_queried_tokens": st.cache.queried_tokens,
    });
    match outcome.output {
        Ok(out) => {
            println!("{out}");
            eprintln!("stats: {stats}");
            Ok(())
        }
        Err(e) => {
            eprintln!("stats: {stats}");
            bail!("the program failed: {e}")
        }
    }
}
