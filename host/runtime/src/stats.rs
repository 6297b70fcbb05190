//! Per-run statistics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// What one run did, collected by the runtime. Engine-side figures (cache
/// hits, engine steps) come from [`LmBackend::stats`](crate::LmBackend::stats).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunStats {
    /// From the call of `run` to its end.
    pub wall_time: Duration,
    /// Creating the store and instantiating the component.
    pub instantiate_time: Duration,
    /// From the call of `run` to the guest's first call into `arbor:lm`.
    pub first_host_call: Option<Duration>,
    /// Calls into `arbor:lm` (WASI calls not counted).
    pub host_calls: u64,
    /// States created, forks included.
    pub states_created: u64,
    /// Most states held at once.
    pub peak_live_states: u64,
    /// `generate` commands executed.
    pub generate_calls: u64,
    /// `select` commands executed.
    pub select_calls: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Prompt tokens submitted to the backend, over all requests (the
    /// cache makes shared prefixes cheap; this counts them every time).
    pub prompt_tokens: u64,
    /// Bytes written to stdout and stderr, kept or not.
    pub log_bytes: u64,
    /// Time model calls waited for the embedder's token meter (the tenant's
    /// quota), summed over calls whose wait ended.
    pub quota_wait: Duration,
}

/// Live counters behind [`RunStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub host_calls: AtomicU64,
    pub states_created: AtomicU64,
    pub peak_live_states: AtomicU64,
    pub generate_calls: AtomicU64,
    pub select_calls: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub quota_wait_micros: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn observe_live(&self, live: u64) {
        self.peak_live_states.fetch_max(live, Relaxed);
    }

    /// Copies the counters into `stats`.
    pub(crate) fn fill(&self, stats: &mut RunStats) {
        stats.host_calls = self.host_calls.load(Relaxed);
        stats.states_created = self.states_created.load(Relaxed);
        stats.peak_live_states = self.peak_live_states.load(Relaxed);
        stats.generate_calls = self.generate_calls.load(Relaxed);
        stats.select_calls = self.select_calls.load(Relaxed);
        stats.generated_tokens = self.generated_tokens.load(Relaxed);
        stats.prompt_tokens = self.prompt_tokens.load(Relaxed);
        stats.quota_wait = Duration::from_micros(self.quota_wait_micros.load(Relaxed));
    }
}
