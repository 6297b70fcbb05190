//! Shared set-up: one tiny random model per test binary.

#![allow(dead_code)]

use arbor_engine::{Engine, EngineOptions, Preset, WeightDtype};
use arbor_export::export_random;
use arbor_scheduler::{Scheduler, SchedulerConfig};
use std::path::PathBuf;
use std::sync::OnceLock;

pub fn tiny_model() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        export_random(Preset::Tiny, 11, d.path(), WeightDtype::F32).expect("export tiny model");
        d
    })
    .path()
    .to_path_buf()
}

pub fn scheduler(kv_slots: usize, cfg: SchedulerConfig) -> Scheduler {
    let engine = Engine::open(
        &tiny_model(),
        &EngineOptions {
            kv_slots,
            threads: 1,
            ..Default::default()
        },
    )
    .expect("open engine");
    Scheduler::start(engine, cfg)
}
