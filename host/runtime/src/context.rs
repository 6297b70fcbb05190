//! What one run shares between its store and its state workers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;

use crate::backend::{LmBackend, Namespace, Role};
use crate::error::LmError;
use crate::limits::Limits;
use crate::meter::TokenMeter;
use crate::run::RunEvent;
use crate::stats::Counters;

/// The text around a chat message's content, tokenized once per runtime.
#[derive(Debug)]
pub(crate) struct Affixes {
    pub prefix_text: String,
    pub prefix_tokens: Vec<u32>,
    pub suffix_text: String,
    pub suffix_tokens: Vec<u32>,
}

/// Marker content used to split a rendered message into its affixes.
const MARKER: &str = "\u{2063}arbor-content-marker\u{2063}";

/// The backend plus what the runtime derives from it once for all runs.
pub(crate) struct Lm {
    pub backend: Arc<dyn LmBackend>,
    affixes: Mutex<HashMap<Role, Arc<Affixes>>>,
}

impl Lm {
    pub(crate) fn new(backend: Arc<dyn LmBackend>) -> Self {
        Lm {
            backend,
            affixes: Mutex::default(),
        }
    }

    /// The template text before and after a message of `role`.
    pub(crate) fn affixes(&self, role: Role) -> Result<Arc<Affixes>, LmError> {
        if let Some(a) = self
            .affixes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&role)
        {
            return Ok(a.clone());
        }
        let rendered = self.backend.render_chat_message(role, MARKER)?;
        let at = rendered.find(MARKER).ok_or_else(|| {
            LmError::Engine(format!(
                "the chat template does not reproduce a {role:?} message's content verbatim"
            ))
        })?;
        let prefix_text = rendered[..at].to_string();
        let suffix_text = rendered[at + MARKER.len()..].to_string();
        let affixes = Arc::new(Affixes {
            prefix_tokens: self.backend.tokenize(&prefix_text)?,
            suffix_tokens: self.backend.tokenize(&suffix_text)?,
            prefix_text,
            suffix_text,
        });
        self.affixes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(role, affixes.clone());
        Ok(affixes)
    }
}

/// State of one run that outlives individual host calls.
pub(crate) struct RunShared {
    pub lm: Arc<Lm>,
    pub namespace: Namespace,
    pub limits: Limits,
    pub counters: Counters,
    pub events: Option<UnboundedSender<RunEvent>>,
    /// Where model calls reserve and settle their tokens, if anywhere.
    pub meter: Option<Arc<dyn TokenMeter>>,
    /// Model calls waiting for the meter now.
    quota_waiters: AtomicU32,
    /// Back-pressure on queued commands (see `Limits::max_queued_commands`).
    pub queue: Arc<Semaphore>,
    live_states: AtomicU32,
    /// Generated tokens used or reserved by generations in flight.
    tokens_reserved: AtomicU64,
    next_state_id: AtomicU64,
    workers: Mutex<Vec<AbortHandle>>,
    started: Instant,
    first_call: OnceLock<Duration>,
}

impl RunShared {
    pub(crate) fn new(
        lm: Arc<Lm>,
        namespace: Namespace,
        limits: Limits,
        events: Option<UnboundedSender<RunEvent>>,
        meter: Option<Arc<dyn TokenMeter>>,
        started: Instant,
    ) -> Self {
        RunShared {
            lm,
            namespace,
            queue: Arc::new(Semaphore::new(limits.max_queued_commands.max(1) as usize)),
            limits,
            counters: Counters::default(),
            events,
            meter,
            quota_waiters: AtomicU32::new(0),
            live_states: AtomicU32::new(0),
            tokens_reserved: AtomicU64::new(0),
            next_state_id: AtomicU64::new(1),
            workers: Mutex::default(),
            started,
            first_call: OnceLock::new(),
        }
    }

    pub(crate) fn backend(&self) -> &dyn LmBackend {
        self.lm.backend.as_ref()
    }

    /// Counts a call from the guest.
    pub(crate) fn host_call(&self) {
        self.first_call.get_or_init(|| self.started.elapsed());
        Counters::add(&self.counters.host_calls, 1);
    }

    pub(crate) fn first_call(&self) -> Option<Duration> {
        self.first_call.get().copied()
    }

    /// Claims `n` live states and returns the first of `n` fresh ids.
    pub(crate) fn claim_states(&self, n: u32) -> Result<u64, LmError> {
        let max = self.limits.max_live_states;
        let claimed = self.live_states.fetch_update(SeqCst, SeqCst, |live| {
            live.checked_add(n).filter(|&t| t <= max)
        });
        match claimed {
            Ok(before) => {
                self.counters.observe_live(u64::from(before + n));
                Counters::add(&self.counters.states_created, u64::from(n));
                Ok(self.next_state_id.fetch_add(u64::from(n), SeqCst))
            }
            Err(live) => Err(LmError::LimitExceeded(format!(
                "{n} more state(s) would exceed the limit of {max} live states ({live} live)"
            ))),
        }
    }

    pub(crate) fn release_state(&self) {
        self.live_states.fetch_sub(1, SeqCst);
    }

    /// Reserves up to `wanted` generated tokens from the run's budget.
    pub(crate) fn reserve_tokens(&self, wanted: u32) -> Result<u32, LmError> {
        let max = self.limits.max_generated_tokens;
        let mut granted = 0;
        let res = self.tokens_reserved.fetch_update(SeqCst, SeqCst, |used| {
            granted = max.saturating_sub(used).min(u64::from(wanted));
            (granted > 0).then_some(used + granted)
        });
        match res {
            Ok(_) => Ok(granted as u32),
            Err(_) => Err(LmError::LimitExceeded(format!(
                "the run's budget of {max} generated tokens is spent"
            ))),
        }
    }

    /// Returns `n` reserved but unused tokens to the budget.
    pub(crate) fn refund_tokens(&self, n: u32) {
        self.tokens_reserved.fetch_sub(u64::from(n), SeqCst);
    }

    /// Counts a model call as waiting for the meter until the guard drops.
    pub(crate) fn waiting_for_quota(&self) -> QuotaWait<'_> {
        self.quota_waiters.fetch_add(1, SeqCst);
        QuotaWait(&self.quota_waiters)
    }

    /// Whether some model call is waiting for the meter now.
    pub(crate) fn is_waiting_for_quota(&self) -> bool {
        self.quota_waiters.load(SeqCst) > 0
    }

    /// Registers a worker task so that it dies with the run.
    pub(crate) fn adopt_worker(&self, handle: AbortHandle) {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers.retain(|w| !w.is_finished());
        workers.push(handle);
    }

    /// Stops every worker: pending backend requests are dropped, which
    /// cancels them.
    pub(crate) fn abort_workers(&self) {
        for w in self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            w.abort();
        }
    }

    pub(crate) fn emit(&self, event: RunEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }
}

/// Tokens reserved from the run's budget; what is not used goes back, also
/// when the generation fails or is cancelled.
pub(crate) struct Reservation<'a> {
    pub(crate) run: &'a RunShared,
    pub(crate) granted: u32,
}

impl Reservation<'_> {
    pub(crate) fn settle(mut self, used: u32) {
        self.run.refund_tokens(self.granted - used);
        self.granted = 0;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.granted > 0 {
            self.run.refund_tokens(self.granted);
        }
    }
}

/// A model call waiting for the run's meter; see [`RunShared::waiting_for_quota`].
pub(crate) struct QuotaWait<'a>(&'a AtomicU32);

impl Drop for QuotaWait<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}
