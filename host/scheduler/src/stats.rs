//! Scheduler statistics, published after every step.

use arbor_kvcache::CacheStats;
use serde::Serialize;

/// A snapshot of the scheduler's counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SchedulerStats {
    /// Forward passes run.
    pub steps: u64,
    pub prefill_tokens: u64,
    pub decode_tokens: u64,
    pub preemptions: u64,
    pub finished: u64,
    pub cancelled: u64,
    pub running: usize,
    pub waiting: usize,
    pub pool_slots: usize,
    pub free_slots: usize,
    pub cache: CacheStats,
    /// Tokens chosen by sampling under a constraint.
    pub constrained_sampled_tokens: u64,
    /// Tokens appended by jump-forward without a decoding step of their own.
    pub jump_forward_tokens: u64,
    /// Token-mask computation and application per sampled constrained token,
    /// over the most recent samples, in microseconds.
    pub mask_us_p50: f64,
    pub mask_us_p99: f64,
}
