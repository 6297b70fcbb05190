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
    /// Requests failed because the engine could not run their rows (found
    /// by retrying a failed step in halves; the rest of the step ran).
    pub engine_failures: u64,
    pub running: usize,
    pub waiting: usize,
    pub pool_slots: usize,
    /// Tokens per KV page (the engine's allocation unit).
    pub page_size: usize,
    pub free_slots: usize,
    pub cache: CacheStats,
    /// Tokens chosen by sampling under a constraint.
    pub constrained_sampled_tokens: u64,
    /// Tokens drawn at a temperature from candidates the engine computed
    /// where the logits are, and how many of those draws landed beyond the
    /// candidates and fetched their whole row.
    pub device_draws: u64,
    pub tail_rows_fetched: u64,
    /// Tokens appended by jump-forward without a decoding step of their own.
    pub jump_forward_tokens: u64,
    /// Token-mask computation and application per sampled constrained token,
    /// in microseconds (from a log-scale histogram: within 6%).
    pub mask_us_p50: f64,
    pub mask_us_p99: f64,
    /// Seconds inside the engine's forward passes (and their slot copies).
    pub engine_seconds: f64,
    /// Seconds of the scheduler's own work in steps that ran a forward
    /// pass: admission, planning, committing (sampling, constraints, stop
    /// rules, cache inserts). With `engine_seconds`, where a step's time goes.
    pub host_seconds: f64,
}

/// Buckets per factor of ten.
const PER_DECADE: f64 = 40.0;
/// Buckets from 0.01 µs to 100 s.
const BUCKETS: usize = 400;

/// Mask timings as a log-scale histogram: recording and publishing cost
/// O(1) and O(buckets), where sorting recent samples cost O(n log n) on the
/// engine thread every step.
pub struct MaskTimer {
    counts: Vec<u64>,
    total: u64,
    dirty: bool,
}

impl Default for MaskTimer {
    fn default() -> Self {
        MaskTimer {
            counts: vec![0; BUCKETS],
            total: 0,
            dirty: false,
        }
    }
}

impl MaskTimer {
    pub fn record(&mut self, us: f64) {
        let b = ((us.max(1e-2).log10() + 2.0) * PER_DECADE) as usize;
        self.counts[b.min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.dirty = true;
    }

    /// Writes the percentiles into `stats` if anything changed.
    pub fn publish(&mut self, stats: &mut SchedulerStats) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        stats.mask_us_p50 = self.percentile(0.5);
        stats.mask_us_p99 = self.percentile(0.99);
    }

    fn percentile(&self, p: f64) -> f64 {
        let rank = ((self.total as f64 * p).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // The bucket's geometric middle.
                return 10f64.powf((b as f64 + 0.5) / PER_DECADE - 2.0);
            }
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_bucket() {
        let mut t = MaskTimer::default();
        for i in 1..=1000 {
            t.record(i as f64);
        }
        let mut s = SchedulerStats::default();
        t.publish(&mut s);
        assert!(
            (s.mask_us_p50 / 500.0 - 1.0).abs() < 0.06,
            "{}",
            s.mask_us_p50
        );
        assert!(
            (s.mask_us_p99 / 990.0 - 1.0).abs() < 0.06,
            "{}",
            s.mask_us_p99
        );
    }
}
