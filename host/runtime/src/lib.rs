//! The WebAssembly program runtime: runs untrusted LLM programs against the
//! language model.
//!
//! Programs are WebAssembly components of the `arbor:lm/program` world
//! (`wit/arbor.wit`). A [`Runtime`] compiles and caches them ([`Runtime::load`])
//! and runs each call of `run` in its own store with its own [`Limits`]
//! ([`Runtime::run`]). The model is reached through the [`LmBackend`] trait,
//! which the scheduler implements; an embedder that rate-limits tokens
//! meters each run's model calls through a [`TokenMeter`].

mod backend;
mod bench;
mod bindings;
mod cache;
mod context;
mod error;
mod host_impl;
mod limits;
mod log;
mod meter;
mod run;
mod runtime;
mod state;
mod stats;
mod stream;

pub use backend::{
    ChoiceScore, Constraint, Finish, GenerateOptions, Generated, LmBackend, Namespace,
    RequestError, Role, TokenSink,
};
pub use bench::{BenchConfig, BenchError, BenchReport, Percentiles, bench_runtime};
pub use cache::{ContentHash, content_hash};
pub use error::{LoadError, RunError};
pub use limits::Limits;
pub use meter::{MeterTicket, TokenMeter};
pub use run::{CancelHandle, RunCtx, RunEvent, RunOptions, RunOutcome};
pub use runtime::{Program, Runtime, RuntimeConfig};
pub use state::StateHandle;
pub use stats::RunStats;
