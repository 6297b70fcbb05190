//! What every handler shares.

use crate::db::Db;
use crate::metrics::Metrics;
use crate::quota::{FairGate, Quotas, TokenMeter};
use arbor_runtime::{CancelHandle, Runtime};
use arbor_scheduler::Scheduler;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The server's shared state.
pub struct AppState {
    pub db: Db,
    pub scheduler: Scheduler,
    /// The program runtime, or why it could not start (program endpoints
    /// then answer 503 while the OpenAI endpoints keep working).
    pub runtime: Result<Arc<Runtime>, String>,
    pub gate: FairGate,
    pub meter: TokenMeter,
    pub quotas: Quotas,
    pub metrics: Metrics,
    /// The id `/v1/models` lists and requests must name.
    pub model_name: String,
    /// Content-addressed program files.
    pub programs_dir: PathBuf,
    /// Cancel handles of runs in flight, by run id.
    pub live_runs: Mutex<HashMap<String, CancelHandle>>,
    pub ready: AtomicBool,
    /// How long a client may take to send its request body.
    pub body_timeout: Duration,
}
