//! Admission: moving waiting requests to running, in the policy's order,
//! as far as the KV pool can hold them.
//!
//! Invariant: a request is admitted only with its cached prefix locked and
//! room for the rest of its prompt plus a small output reserve (free pages
//! plus evictable cache entries); a request that does not fit stops
//! admission this step (head of line), so large prompts are not starved by
//! small ones behind them.

use crate::core::Core;
use crate::policy::Candidate;
use arbor_kvcache::Namespace;

/// Shortest shared uncached prefix for which admission waits for the first
/// request to cache it, instead of prefilling it twice in one batch.
const IN_BATCH_SHARE_MIN: usize = 8;

impl Core {
    /// Moves waiting requests to running.
    pub(crate) fn admit(&mut self) {
        if self.waiting.is_empty() || self.running.len() >= self.cfg.max_running {
            return;
        }
        // One prefix lookup per waiting request per step, and none when the
        // policy does not read them.
        let hits = self.kv.cache_enabled() && self.admission.uses_hits(self.waiting.len());
        let queue: Vec<Candidate> = self
            .waiting
            .iter()
            .map(|j| Candidate {
                arrival: j.arrival,
                hit: if hits {
                    self.kv.peek(j.ns, &j.tokens)
                } else {
                    0
                },
            })
            .collect();
        let order = self.admission.order(self.step, &queue);
        let mut admitted: Vec<usize> = Vec::new();
        // Prompts admitted this round whose prefixes are not cached yet:
        // (namespace, waiting index, cached length).
        let mut in_flight: Vec<(Namespace, usize, usize)> = Vec::new();
        let nothing_running = self.running.is_empty();
        for i in order {
            if self.running.len() + admitted.len() >= self.cfg.max_running {
                break;
            }
            let job = &self.waiting[i];
            if self.kv.cache_enabled() {
                let hit = if hits {
                    queue[i].hit
                } else {
                    self.kv.peek(job.ns, &job.tokens)
                };
                let shares = in_flight.iter().any(|&(ns, k, cached)| {
                    let common = common_prefix(&job.tokens, &self.waiting[k].tokens);
                    ns == job.ns && common >= hit.max(cached) + IN_BATCH_SHARE_MIN
                });
                if shares {
                    // Wait one round: the first request caches the prefix.
                    continue;
                }
            }
            // With nothing running there is nothing to wait for: admit on the
            // bare need, or a request near the pool's size would wait forever.
            let reserve = if nothing_running && admitted.is_empty() {
                0
            } else {
                job.reserve(self.cfg.decode_reserve)
            };
            let Some(seq) = self.kv.admit(job.ns, &job.tokens, reserve) else {
                break;
            };
            let job = &mut self.waiting[i];
            let cached = seq.cached_len();
            job.usage.cached_tokens = job
                .usage
                .cached_tokens
                .max(cached.min(job.usage.prompt_tokens));
            job.kv = Some(seq);
            in_flight.push((job.ns, i, cached));
            admitted.push(i);
        }
        admitted.sort_unstable_by(|a, b| b.cmp(a));
        let mut newly: Vec<_> = admitted
            .into_iter()
            .map(|i| self.waiting.remove(i).expect("index from the queue"))
            .collect();
        newly.reverse();
        self.running.extend(newly);
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
