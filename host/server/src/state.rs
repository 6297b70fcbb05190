//! What every handler shares: the database, the scheduler and runtime,
//! the quotas, and the runs in flight (each in [`AppState::live_runs`] from
//! the moment it is recorded or recovered until its end is recorded).

use crate::auth::Tenant;
use crate::db::{Db, RunRow};
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
use tokio::sync::watch;

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
    /// Runs in flight or waiting to resume, by run id.
    pub live_runs: Mutex<HashMap<String, Arc<LiveRun>>>,
    pub ready: AtomicBool,
    /// How long a client may take to send its request body.
    pub body_timeout: Duration,
}

/// A run in flight, or re-queued by a restart and waiting for its place.
pub struct LiveRun {
    pub cancel: CancelHandle,
    /// Set by a graceful shutdown: the run, cancelled, stays `running` in
    /// the database for the next start to resume, its attempt not counted.
    pub stopping: AtomicBool,
    /// How the run ended; `None` while it runs.
    pub end: watch::Sender<Option<RunEnd>>,
}

/// How a [`LiveRun`] ended.
#[derive(Clone, Debug)]
pub enum RunEnd {
    /// Its outcome, as recorded.
    Recorded(Box<RunRow>),
    /// A graceful shutdown left it for the next start.
    LeftForRestart,
    /// It ended, but its record could not be read back (why).
    Unreadable(String),
}

impl Default for LiveRun {
    fn default() -> Self {
        LiveRun {
            cancel: CancelHandle::new(),
            stopping: AtomicBool::new(false),
            end: watch::Sender::new(None),
        }
    }
}

impl LiveRun {
    /// Waits for the run's end.
    pub async fn ended(&self) -> RunEnd {
        let mut rx = self.end.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(end) => end.clone().unwrap_or(RunEnd::LeftForRestart),
            // Unreachable while `self` holds the sender.
            Err(_) => RunEnd::LeftForRestart,
        }
    }
}

impl AppState {
    /// The live run `id`, if it is one.
    pub fn live_run(&self, id: &str) -> Option<Arc<LiveRun>> {
        self.live_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

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
