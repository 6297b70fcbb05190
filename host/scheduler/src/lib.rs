//! The cache-aware continuous-batching scheduler that drives the engine.
//!
//! Requests arrive from async tasks through a [`Scheduler`] handle and get
//! their events back as a stream. One thread owns the engine (any
//! [`StepEngine`]) and the [`arbor_kvcache::KvManager`], and runs steps:
//! plan (admission policy, batch, slots; no tensors) → forward → commit
//! (decoders, `select` scores, cache inserts). Shared prefixes (few-shot
//! examples, chat history, forked branches) are computed once and then
//! found in the cache by every later request in the same namespace.
//!
//! Who owns what: slots belong to the KV manager, text to each request's
//! decoder (whose deltas are final), policy to [`policy`].

mod admit;
mod commit;
mod config;
mod core;
mod decoder;
mod engine;
mod handle;
mod job;
mod open;
mod plan;
pub mod policy;
mod request;
mod stats;

#[cfg(test)]
mod tests;

// What requests are made of and how text is encoded are part of the
// scheduler's API: its callers need not reach past it into the engine.
pub use arbor_engine::engine::DEFAULT_KV_FRACTION;
pub use arbor_engine::tokenizer::ChatMessage;
pub use arbor_engine::{Device, SamplingParams, Tokenizer};
pub use arbor_types::{ChoiceScore, Constraint, ConstraintError, Finish, Namespace, RequestError};
pub use config::SchedulerConfig;
pub use core::PoolAudit;
pub use decoder::TextStream;
pub use engine::{Step, StepEngine};
pub use handle::{Generated, GenerationStream, Scheduler};
pub use open::ModelOptions;
pub use policy::Policy;
pub use request::{Event, GenerateRequest, MAX_TOP_LOGPROBS, ScoreRequest, TokenLogprob, Usage};
pub use stats::SchedulerStats;
