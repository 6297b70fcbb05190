//! Arbor's engine: model export, the ONNX Runtime forward pass over a ragged
//! batch with a token-granular KV pool, and sampling.
//!
//! Data flows one way: the scheduler decides what runs, the [`Engine`] runs
//! it. The engine holds the KV pool but not its ownership: callers say which
//! slots hold each sequence's history and where new K/V go.

pub mod checkpoint;
pub mod config;
mod cuda;
mod device_pool;
pub mod engine;
pub mod export;
pub mod graph;
mod kv_pool;
pub mod onnx;
pub mod ort_env;
pub mod sampling;
pub mod tokenizer;

pub use config::{ModelConfig, Preset};
pub use engine::{BatchEntry, Device, Engine, EngineOptions, EngineStats, ForwardOutput, Logits};
pub use export::{ModelMeta, WeightDtype};
pub use sampling::{Sampler, SamplingParams};
pub use tokenizer::Tokenizer;
