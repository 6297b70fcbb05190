//! Admission policy: in which order waiting requests are admitted.
//!
//! Invariant: a policy only orders; it never drops or duplicates a request
//! (the result is a permutation of the queue), and for a given queue, step
//! and seed the order is the same every time. Under [`Policy::CacheAware`]
//! no request waits more than `starvation_steps` steps behind better cache
//! hits: from then on it goes first, oldest first.

use serde::{Deserialize, Serialize};

/// Named admission orders (the cache-aware one is the default; the others
/// exist for ablations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Longest cached prefix first, with aging; first come, first served
    /// while the queue is longer than `fcfs_above` (matching every waiting
    /// prompt against the cache each step would cost more than it saves,
    /// as SGLang found).
    CacheAware,
    /// First come, first served.
    Fcfs,
    /// A seeded random order each step.
    Random,
}

/// What the policy knows of one waiting request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The step it arrived in (its place in the queue breaks ties).
    pub arrival: u64,
    /// Tokens of its prompt found in the cache now.
    pub hit: usize,
}

/// An admission policy with its settings.
#[derive(Clone, Debug)]
pub struct Admission {
    pub policy: Policy,
    /// Steps a request may wait before it goes ahead of better cache hits.
    pub starvation_steps: u64,
    /// Queue length above which the cache-aware policy serves in arrival order.
    pub fcfs_above: usize,
    rng: u64,
}

impl Admission {
    pub fn new(policy: Policy, starvation_steps: u64, fcfs_above: usize, seed: u64) -> Self {
        Admission {
            policy,
            starvation_steps,
            fcfs_above,
            // xorshift needs a nonzero state.
            rng: seed | 1,
        }
    }

    /// Whether [`Self::order`] will read the candidates' cache hits this
    /// step for a queue of `len`; callers skip the prefix lookups if not.
    pub fn uses_hits(&self, len: usize) -> bool {
        self.policy == Policy::CacheAware && len <= self.fcfs_above
    }

    /// Indices into `queue` in admission order.
    pub fn order(&mut self, step: u64, queue: &[Candidate]) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..queue.len()).collect();
        let fcfs = |idx: &mut Vec<usize>| idx.sort_by_key(|&i| (queue[i].arrival, i));
        match self.policy {
            Policy::Fcfs => fcfs(&mut idx),
            Policy::CacheAware if !self.uses_hits(queue.len()) => fcfs(&mut idx),
            Policy::CacheAware => {
                let starve = self.starvation_steps;
                let starved = |c: &Candidate| step.saturating_sub(c.arrival) > starve;
                idx.sort_by(|&a, &b| {
                    let (ca, cb) = (&queue[a], &queue[b]);
                    let (sa, sb) = (starved(ca), starved(cb));
                    sb.cmp(&sa).then(if sa {
                        (ca.arrival, a).cmp(&(cb.arrival, b))
                    } else {
                        cb.hit
                            .cmp(&ca.hit)
                            .then((ca.arrival, a).cmp(&(cb.arrival, b)))
                    })
                });
            }
            Policy::Random => {
                for i in (1..idx.len()).rev() {
                    let j = (self.next() % (i as u64 + 1)) as usize;
                    idx.swap(i, j);
                }
            }
        }
        idx
    }

    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(items: &[(u64, usize)]) -> Vec<Candidate> {
        items
            .iter()
            .map(|&(arrival, hit)| Candidate { arrival, hit })
            .collect()
    }

    fn is_permutation(order: &[usize], n: usize) -> bool {
        let mut o = order.to_vec();
        o.sort_unstable();
        o == (0..n).collect::<Vec<_>>()
    }

    #[test]
    fn cache_aware_takes_longest_hit_first_then_arrival() {
        let mut a = Admission::new(Policy::CacheAware, 100, 128, 0);
        let q = queue(&[(0, 5), (1, 40), (2, 40), (3, 0)]);
        assert_eq!(a.order(10, &q), vec![1, 2, 0, 3]);
    }

    #[test]
    fn a_starved_request_goes_first_and_starved_ones_go_oldest_first() {
        let mut a = Admission::new(Policy::CacheAware, 100, 128, 0);
        // Arrivals 0 and 3 have waited more than 100 steps at step 104.
        let q = queue(&[(3, 0), (50, 90), (0, 1), (60, 10)]);
        assert_eq!(a.order(104, &q), vec![2, 0, 1, 3]);
    }

    #[test]
    fn no_request_waits_past_the_starvation_bound() {
        // A request with no hit keeps losing to a stream of full hits until
        // its wait passes the bound; then it is first.
        let mut a = Admission::new(Policy::CacheAware, 8, 128, 0);
        for step in 0..20u64 {
            let q = queue(&[(0, 0), (step, 1000)]);
            let first = a.order(step, &q)[0];
            assert_eq!(first == 0, step > 8, "step {step}");
        }
    }

    #[test]
    fn long_queues_are_served_in_arrival_order() {
        let mut a = Admission::new(Policy::CacheAware, 100, 3, 0);
        assert!(a.uses_hits(3));
        assert!(!a.uses_hits(4));
        let q = queue(&[(2, 90), (0, 0), (1, 50), (3, 70)]);
        assert_eq!(a.order(5, &q), vec![1, 2, 0, 3]);
    }

    #[test]
    fn fcfs_ignores_hits_and_breaks_ties_by_queue_position() {
        let mut a = Admission::new(Policy::Fcfs, 100, 128, 0);
        assert!(!a.uses_hits(1));
        let q = queue(&[(1, 0), (0, 99), (1, 99), (0, 0)]);
        assert_eq!(a.order(5, &q), vec![1, 3, 0, 2]);
    }

    #[test]
    fn every_policy_returns_a_stable_permutation() {
        let q = queue(&[(4, 1), (2, 7), (9, 7), (0, 0), (4, 3), (1, 2), (8, 8)]);
        for p in [Policy::CacheAware, Policy::Fcfs, Policy::Random] {
            let (mut a, mut b) = (Admission::new(p, 5, 128, 42), Admission::new(p, 5, 128, 42));
            for step in 0..10 {
                let (x, y) = (a.order(step, &q), b.order(step, &q));
                assert!(is_permutation(&x, q.len()), "{p:?}");
                assert_eq!(x, y, "{p:?}: same seed, same order");
            }
        }
    }

    #[test]
    fn random_orders_differ_between_steps() {
        let q = queue(&[(0, 0); 8]);
        let mut a = Admission::new(Policy::Random, 5, 128, 7);
        let orders: std::collections::HashSet<Vec<usize>> =
            (0..10).map(|s| a.order(s, &q)).collect();
        assert!(orders.len() > 1);
    }
}
