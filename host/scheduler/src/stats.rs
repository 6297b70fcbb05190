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
}
