//! Per-tenant quotas and fair sharing of the scheduler.
//!
//! [`FairGate`] bounds how many requests (completions or program runs) are
//! inside the scheduler at once, overall and per tenant. Requests beyond
//! that wait in a per-tenant queue, and freed places go to the tenants'
//! queues in round-robin order, so a tenant that floods the server gets its
//! share and no more while others wait. A tenant whose queue is full is
//! refused with 429. [`TokenQuota`] enforces tokens per minute: a
//! completion reserves what it may use up front, a program run reserves
//! call by call through its [`RunMeter`].

mod gate;
mod tokens;

pub use gate::{FairGate, Permit};
pub use tokens::{Reservation, RunMeter, TokenQuota};

use std::time::Duration;

/// Limits applied to every tenant.
#[derive(Clone, Debug)]
pub struct Quotas {
    /// Requests of one tenant inside the scheduler at once.
    pub max_concurrent: usize,
    /// Requests of one tenant waiting for a place; more get 429.
    pub max_queued: usize,
    /// Prompt plus completion tokens per rolling minute.
    pub tokens_per_minute: u64,
    /// Largest `max_tokens` one request may ask for.
    pub max_tokens_per_request: usize,
    /// Largest `n` of one completion request.
    pub max_n: usize,
    /// Largest program upload.
    pub max_program_bytes: usize,
    /// Programs one tenant may keep.
    pub max_programs: usize,
    /// Wall-clock deadline of one program run.
    pub run_deadline: Duration,
    /// Linear memory of one program run.
    pub run_memory_bytes: usize,
    /// Tokens one program run may generate in total.
    pub run_max_tokens: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_concurrent: 16,
            max_queued: 256,
            tokens_per_minute: 1_000_000,
            max_tokens_per_request: 4096,
            max_n: 8,
            max_program_bytes: 64 << 20,
            max_programs: 100,
            run_deadline: Duration::from_secs(60),
            run_memory_bytes: 64 << 20,
            run_max_tokens: 16_384,
        }
    }
}

/// Why a request was refused by a quota, and when to retry.
#[derive(Debug)]
pub struct Refused {
    pub message: String,
    pub retry_after_s: u64,
}
