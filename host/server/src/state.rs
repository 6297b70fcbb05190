//! What every handler shares.

use crate::auth::Tenant;
use crate::db::Db;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::quota::{FairGate, Permit, Quotas, Reservation, TokenMeter};
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

impl AppState {
    /// Admits a request of `tenant` that may use up to `tokens`: reserves
    /// them against the token quota, then waits for a fair place in the
    /// scheduler. A refusal (429) takes nothing.
    pub async fn admit(
        &self,
        tenant: &Tenant,
        tokens: u64,
    ) -> Result<(Permit, Reservation), ApiError> {
        let refused = |r: crate::quota::Refused| {
            self.metrics.tenant(&tenant.name, |u| u.refused += 1);
            ApiError::too_many(r.message, r.retry_after_s)
        };
        let reservation = self.meter.reserve(tenant.id, tokens).map_err(refused)?;
        match self.gate.acquire(tenant.id).await {
            Ok(permit) => Ok((permit, reservation)),
            Err(r) => {
                self.meter.settle(reservation, 0);
                Err(refused(r))
            }
        }
    }
}
