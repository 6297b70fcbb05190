//! Scheduler settings.

use crate::policy::Policy;

/// How the scheduler batches and caches.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Most tokens in one forward pass, `select` choice rows included;
    /// prompts and choices longer than what is left of it run in chunks, so
    /// decoding never stalls behind them.
    pub max_batch_tokens: usize,
    /// Most requests admitted at once.
    pub max_running: usize,
    /// Use the radix cache; off recomputes every prompt (the baseline).
    pub cache_enabled: bool,
    /// The admission order.
    pub policy: Policy,
    /// Steps a request may wait before it is admitted ahead of better cache hits.
    pub starvation_steps: u64,
    /// Waiting requests above which the cache-aware policy admits first
    /// come, first served (SGLang switches at 128).
    pub fcfs_above: usize,
    /// Seed of [`Policy::Random`].
    pub seed: u64,
    /// Output tokens reserved per admitted request, so admission rarely
    /// forces a preemption later.
    pub decode_reserve: usize,
    /// Check the KV pool's invariants after every step (tests).
    pub check_invariants: bool,
    /// Append text a constraint forces in one step instead of decoding it
    /// token by token (the compressed FSM's jump-forward).
    pub jump_forward: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_batch_tokens: 512,
            max_running: 256,
            cache_enabled: true,
            policy: Policy::CacheAware,
            starvation_steps: 128,
            fcfs_above: 128,
            seed: 0,
            decode_reserve: 16,
            check_invariants: false,
            jump_forward: true,
        }
    }
}
