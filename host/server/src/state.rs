//! What every handler shares.

use crate::auth::Tenant;
use crate::db::Db;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::quota::{FairGate, Permit, Quotas, Refused, Reservation, TokenQuota};
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
    /// Tokens per tenant per minute; shared with each run's meter.
    pub token_quota: Arc<TokenQuota>,
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
        let reservation = self
            .token_quota
            .reserve(tenant.id, tokens)
            .map_err(|r| self.refused(tenant, r))?;
        match self.gate.acquire(tenant.id).await {
            Ok(permit) => Ok((permit, reservation)),
            Err(r) => {
                self.token_quota.settle(reservation, 0);
                Err(self.refused(tenant, r))
            }
        }
    }

    /// Admits a program run of `tenant` while its minute has room, then
    /// waits for a fair place. The run's model calls reserve their tokens
    /// one by one (see [`crate::quota::RunMeter`]).
    pub async fn admit_run(&self, tenant: &Tenant) -> Result<Permit, ApiError> {
        self.token_quota
            .check_room(tenant.id)
            .map_err(|r| self.refused(tenant, r))?;
        self.gate
            .acquire(tenant.id)
            .await
            .map_err(|r| self.refused(tenant, r))
    }

    fn refused(&self, tenant: &Tenant, r: Refused) -> ApiError {
        self.metrics.tenant(&tenant.name, |u| u.refused += 1);
        ApiError::too_many(r.message, r.retry_after_s)
    }
}
