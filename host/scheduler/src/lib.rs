//! The cache-aware continuous-batching scheduler that owns the engine.
//!
//! Requests arrive from async tasks through a [`Scheduler`] handle and get
//! their tokens back as a stream. One thread owns the [`arbor_engine::Engine`],
//! the radix cache and the slot allocator, and runs one forward pass per step
//! with every decoding request plus prefill chunks under a token budget.
//! Shared prefixes (few-shot examples, chat history, forked branches) are
//! computed once and then found in the cache by every later request in the
//! same namespace.

mod config;
mod core;
mod detok;
mod handle;
mod request;
mod stats;

pub use arbor_kvcache::Namespace;
pub use config::SchedulerConfig;
pub use core::PoolAudit;
pub use handle::{Generated, GenerationStream, Scheduler};
pub use request::{
    ChoiceScore, Constraint, Event, FinishReason, GenerateRequest, MAX_TOP_LOGPROBS,
    SchedulerError, ScoreRequest, TokenLogprob, Usage,
};
pub use stats::SchedulerStats;
