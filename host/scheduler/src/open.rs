//! Opening a model directory straight into a running scheduler, for
//! servers that should not reach past the scheduler into the engine.

use crate::config::SchedulerConfig;
use crate::handle::Scheduler;
use anyhow::Result;
use arbor_engine::{Device, Engine, EngineOptions};
use std::path::Path;

/// How to open a model for serving.
#[derive(Clone, Copy, Debug)]
pub struct ModelOptions {
    /// Token slots of the KV pool; 0 picks the model's context length × 4
    /// (at least 1,024, at most 262,144).
    pub kv_slots: usize,
    /// ONNX Runtime threads (0: one per core).
    pub threads: usize,
    pub device: Device,
}

impl Scheduler {
    /// Opens the model directory `model` (made by `arbor export`) and starts
    /// a scheduler on it. Blocking: loading a model takes a while.
    pub fn open(model: &Path, opts: &ModelOptions, config: SchedulerConfig) -> Result<Scheduler> {
        let meta = arbor_engine::engine::read_meta(model)?;
        let kv_slots = if opts.kv_slots == 0 {
            (meta.config.max_position_embeddings * 4).clamp(1024, 1 << 18)
        } else {
            opts.kv_slots
        };
        let engine = Engine::open(
            model,
            &EngineOptions {
                kv_slots,
                threads: opts.threads,
                device: opts.device,
                ..Default::default()
            },
        )?;
        Ok(Scheduler::try_start(engine, config)?)
    }
}
