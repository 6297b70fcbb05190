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
    /// Token slots of the KV pool; 0 picks, on the CPU, the model's context
    /// length × 4 (at least 1,024, at most 262,144), and on CUDA
    /// `kv_fraction` of the device memory free once the model is loaded.
    pub kv_slots: usize,
    /// See [`ModelOptions::kv_slots`].
    pub kv_fraction: f32,
    /// ONNX Runtime threads (0: one per core).
    pub threads: usize,
    pub device: Device,
}

impl Scheduler {
    /// Opens the model directory `model` (made by `arbor export`) and starts
    /// a scheduler on it. Blocking: loading a model takes a while.
    pub fn open(model: &Path, opts: &ModelOptions, config: SchedulerConfig) -> Result<Scheduler> {
        let meta = arbor_engine::engine::read_meta(model)?;
        let kv_slots = if opts.kv_slots == 0 && opts.device == Device::Cpu {
            (meta.config.max_position_embeddings * 4).clamp(1024, 1 << 18)
        } else {
            opts.kv_slots
        };
        let engine = Engine::open(
            model,
            &EngineOptions {
                kv_slots,
                kv_fraction: opts.kv_fraction,
                threads: opts.threads,
                device: opts.device,
                ..Default::default()
            },
        )?;
        Ok(Scheduler::try_start(engine, config)?)
    }
}
