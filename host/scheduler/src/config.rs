//! Scheduler settings.

/// How the scheduler batches and caches.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Most tokens in one forward pass; prompts longer than what is left of
    /// it are prefilled in chunks, so decoding never stalls behind them.
    pub max_batch_tokens: usize,
    /// Most requests admitted at once.
    pub max_running: usize,
    /// Use the radix cache; off recomputes every prompt (the baseline).
    pub cache_enabled: bool,
    /// Steps a request may wait before it is admitted ahead of better cache hits.
    pub starvation_steps: u64,
    /// Output tokens reserved per admitted request, so admission rarely
    /// forces a preemption later.
    pub decode_reserve: usize,
    /// Check the radix cache's invariants after every step (tests).
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
            starvation_steps: 128,
            decode_reserve: 16,
            check_invariants: false,
            jump_forward: true,
        }
    }
}
