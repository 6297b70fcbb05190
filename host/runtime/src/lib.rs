//! The WebAssembly program runtime: runs untrusted LLM programs against the
//! language model.
//!
//! Programs are WebAssembly components of the `arbor:lm/program` world
//! (`wit/arbor.wit`). A [`Runtime`] compiles and caches them ([`Runtime::load`])
//! and runs each call of `run` in its own store with its own [`Limits`]
//! ([`Runtime::run`]). The model is reached through the [`LmBackend`] trait,
//! which the scheduler implements.

mod backend;
mod bench;
mod bindings;
mod cache;
mod context;
mod error;
mod host_impl;
mod limits;
mod log;
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
pub use run::{CancelHandle, RunCtx, RunEvent, RunOptions, RunOutcome};
pub use runtime::{Program, Runtime, RuntimeConfig};
pub use state::StateHandle;
pub use stats::RunStats;
