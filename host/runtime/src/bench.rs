//! Benchmark of program start latency and of the WIT boundary, exposed for
//! the CLI (`arbor bench runtime`).
//!
//! It needs the bench guest (`examples/bench`, built by `examples/build.sh`),
//! which understands two inputs: `start` (create a state, append a word)
//! and `calls KIND BATCHES PER_BATCH`, which times batches of one host call
//! in the guest and returns the batch times in nanoseconds as JSON.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{LoadError, RunError};
use crate::run::RunOptions;
use crate::runtime::Runtime;

/// How much to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Runs of the `start` program.
    pub runs: usize,
    /// Batches of calls per call kind.
    pub batches: usize,
    /// Calls per batch.
    pub calls_per_batch: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            runs: 500,
            batches: 200,
            calls_per_batch: 1000,
        }
    }
}

/// Median and 99th percentile of a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub median: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl Percentiles {
    /// Percentiles of `sample` (which is sorted in place).
    pub fn of(sample: &mut [Duration]) -> Percentiles {
        if sample.is_empty() {
            return Percentiles::default();
        }
        sample.sort_unstable();
        let at = |q: f64| sample[((sample.len() - 1) as f64 * q).round() as usize];
        Percentiles {
            median: at(0.5),
            p99: at(0.99),
        }
    }
}

/// What [`bench_runtime`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// First [`Runtime::load`] of the component (compilation, or the disk
    /// cache when it has the component).
    pub load_first: Duration,
    /// A repeated load, served from memory.
    pub load_cached: Duration,
    /// Store creation and instantiation.
    pub instantiate: Percentiles,
    /// From the call of `run` to the guest's first host call: the start
    /// latency a program sees.
    pub start_to_first_call: Percentiles,
    /// A whole run of the `start` program.
    pub run: Percentiles,
    /// Per call, of a call that crosses the boundary and does nothing
    /// (`append("")`).
    pub call_empty: Percentiles,
    /// Per call, of `append("x")`: tokenize and queue.
    pub call_append: Percentiles,
    /// Per call, of `token-count()`: a round trip through the state's queue.
    pub call_read: Percentiles,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The bench guest did not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The guest answered something unexpected.
    #[error("unexpected answer from the bench guest: {0}")]
    Protocol(String),
}

/// Measures start latency and per-call overhead with the bench guest
/// `wasm`, on `runtime` (whose backend must tokenize).
pub async fn bench_runtime(
    runtime: &Runtime,
    wasm: &[u8],
    config: &BenchConfig,
) -> Result<BenchReport, BenchError> {
    let t = Instant::now();
    let program = runtime.load(wasm)?;
    let load_first = t.elapsed();
    let t = Instant::now();
    runtime.load(wasm)?;
    let load_cached = t.elapsed();

    let mut instantiate = Vec::with_capacity(config.runs);
    let mut first_call = Vec::with_capacity(config.runs);
    let mut whole = Vec::with_capacity(config.runs);
    for _ in 0..config.runs {
        let outcome = runtime.run(&program, "start", RunOptions::default()).await;
        outcome.output?;
        instantiate.push(outcome.stats.instantiate_time);
        first_call.push(
            outcome
                .stats
                .first_host_call
                .ok_or_else(|| BenchError::Protocol("no host call in `start`".into()))?,
        );
        whole.push(outcome.stats.wall_time);
    }

    let per_call = |kind: &'static str| {
        let input = format!("calls {kind} {} {}", config.batches, config.calls_per_batch);
        let program = &program;
        async move {
            let out = runtime
                .run(program, &input, RunOptions::default())
                .await
                .output?;
            let batches: Vec<u64> = serde_json::from_str(&out)
                .map_err(|e| BenchError::Protocol(format!("{e}: {out}")))?;
            let per = config.calls_per_batch.max(1) as u64;
            let mut sample: Vec<Duration> = batches
                .iter()
                .map(|ns| Duration::from_nanos(ns / per))
                .collect();
            Ok::<_, BenchError>(Percentiles::of(&mut sample))
        }
    };
    let call_empty = per_call("empty").await?;
    let call_append = per_call("append").await?;
    let call_read = per_call("read").await?;

    Ok(BenchReport {
        load_first,
        load_cached,
        instantiate: Percentiles::of(&mut instantiate),
        start_to_first_call: Percentiles::of(&mut first_call),
        run: Percentiles::of(&mut whole),
        call_empty,
        call_append,
        call_read,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let mut s: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut s);
        assert_eq!(p.median, Duration::from_millis(51));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }
}
