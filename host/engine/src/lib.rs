//! Arbor's engine: the ONNX Runtime forward pass over a ragged batch with a
//! token-granular KV pool, and sampling.
//!
//! Data flows one way: the scheduler decides what runs, the [`Engine`] runs
//! it. The engine holds the KV pool but not its ownership: callers say which
//! slots hold each sequence's history and where new K/V go.
//!
//! The engine reads model directories; it never makes them. Their layout is
//! [`format`](mod@format), defined here because the engine is what checks it; the
//! exporter that writes them (checkpoint reading, the forward graph) is the
//! `arbor-export` crate, which depends on this one and never the reverse.

mod batch;
pub mod config;
mod cuda;
mod device_pool;
mod device_sampling;
pub mod engine;
pub mod format;
mod groups;
mod kv_budget;
mod kv_pool;
pub mod ort_env;
mod paged_pool;
mod paged_step;
pub mod sampling;
pub mod tokenizer;

pub use batch::Temperature;
pub use config::{ModelConfig, Preset};
pub use engine::{BatchEntry, Device, Engine, EngineOptions, EngineStats, ForwardOutput, Logits};
pub use format::{ModelMeta, WeightDtype};
pub use sampling::{Candidates, Pick, Sampler, SamplingParams};
pub use tokenizer::Tokenizer;
