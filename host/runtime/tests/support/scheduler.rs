//! The real stack behind `LmBackend`: `arbor_backend::SchedulerBackend`
//! over a tiny model with random weights (the engine exports it; ONNX
//! Runtime must be installed, as for the scheduler's own tests).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arbor_backend::SchedulerBackend;
use arbor_engine::{Engine, EngineOptions, Preset, WeightDtype};
use arbor_export::export_random;
use arbor_scheduler::{Scheduler, SchedulerConfig};

fn tiny_model() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        export_random(Preset::Tiny, 7, d.path(), WeightDtype::F32).expect("export tiny model");
        d
    })
    .path()
    .to_path_buf()
}

/// A fresh scheduler over the tiny model, behind the runtime's adapter.
pub fn start() -> Arc<SchedulerBackend> {
    let engine = Engine::open(
        &tiny_model(),
        &EngineOptions {
            kv_slots: 8192,
            threads: 1,
            ..Default::default()
        },
    )
    .expect("open engine");
    Arc::new(SchedulerBackend::new(Scheduler::start(
        engine,
        SchedulerConfig::default(),
    )))
}
