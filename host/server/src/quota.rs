//! Per-tenant quotas and fair sharing of the scheduler.
//!
//! [`FairGate`] bounds how many requests (completions or program runs) are
//! inside the scheduler at once, overall and per tenant. Requests beyond
//! that wait in a per-tenant queue, and freed places go to the tenants'
//! queues in round-robin order, so a tenant that floods the server gets its
//! share and no more while others wait. A tenant whose queue is full is
//! refused with 429. [`TokenMeter`] enforces tokens per minute.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

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

struct Waiter {
    tx: oneshot::Sender<Permit>,
}

#[derive(Default)]
struct TenantQueue {
    running: usize,
    queue: VecDeque<Waiter>,
}

struct GateState {
    capacity: usize,
    per_tenant: usize,
    max_queued: usize,
    in_use: usize,
    tenants: HashMap<i64, TenantQueue>,
    /// Tenants with waiters, in the order they get the next free place.
    turn: VecDeque<i64>,
}

/// Fair admission to the scheduler; cheap to clone.
#[derive(Clone)]
pub struct FairGate(Arc<Mutex<GateState>>);

/// A place in the scheduler; dropping it hands the place on.
pub struct Permit {
    /// `None` once the place was given back by hand.
    gate: Option<FairGate>,
    tenant: i64,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(g) = self.gate.take() {
            g.release(self.tenant);
        }
    }
}

impl FairGate {
    /// `capacity` places overall, `per_tenant` of them for one tenant at most.
    pub fn new(capacity: usize, per_tenant: usize, max_queued: usize) -> Self {
        FairGate(Arc::new(Mutex::new(GateState {
            capacity: capacity.max(1),
            per_tenant: per_tenant.max(1),
            max_queued,
            in_use: 0,
            tenants: HashMap::new(),
            turn: VecDeque::new(),
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a place for `tenant`, or refuses at once when its queue is full.
    pub async fn acquire(&self, tenant: i64) -> Result<Permit, Refused> {
        let rx = {
            let mut g = self.lock();
            let (in_use, capacity, per_tenant, max_queued) =
                (g.in_use, g.capacity, g.per_tenant, g.max_queued);
            let t = g.tenants.entry(tenant).or_default();
            // Waiters whose client went away hold no place in the queue.
            t.queue.retain(|w| !w.tx.is_closed());
            if t.queue.is_empty() && t.running < per_tenant && in_use < capacity {
                t.running += 1;
                g.in_use += 1;
                return Ok(Permit {
                    gate: Some(self.clone()),
                    tenant,
                });
            }
            if t.queue.len() >= max_queued {
                return Err(Refused {
                    message: format!(
                        "too many requests in flight for this tenant ({} running, {} queued)",
                        t.running,
                        t.queue.len()
                    ),
                    retry_after_s: 1,
                });
            }
            let (tx, rx) = oneshot::channel();
            t.queue.push_back(Waiter { tx });
            if !g.turn.contains(&tenant) {
                g.turn.push_back(tenant);
            }
            rx
        };
        rx.await.map_err(|_| Refused {
            message: "the server is shutting down".into(),
            retry_after_s: 5,
        })
    }

    fn release(&self, tenant: i64) {
        let mut g = self.lock();
        g.in_use = g.in_use.saturating_sub(1);
        if let Some(t) = g.tenants.get_mut(&tenant) {
            t.running = t.running.saturating_sub(1);
        }
        self.dispatch(&mut g);
    }

    /// Hands free places to waiting tenants in turn.
    fn dispatch(&self, g: &mut GateState) {
        let mut idle_turns = 0;
        while g.in_use < g.capacity && idle_turns < g.turn.len() {
            let Some(tenant) = g.turn.pop_front() else {
                break;
            };
            let per_tenant = g.per_tenant;
            let Some(t) = g.tenants.get_mut(&tenant) else {
                continue;
            };
            if t.running >= per_tenant {
                g.turn.push_back(tenant);
                idle_turns += 1;
                continue;
            }
            let mut granted = false;
            while let Some(w) = t.queue.pop_front() {
                t.running += 1;
                let permit = Permit {
                    gate: Some(self.clone()),
                    tenant,
                };
                match w.tx.send(permit) {
                    Ok(()) => {
                        granted = true;
                        break;
                    }
                    Err(mut p) => {
                        // The waiter left; undo by hand, as releasing the
                        // permit here would re-enter this lock.
                        p.gate = None;
                        t.running -= 1;
                    }
                }
            }
            let more = !t.queue.is_empty();
            if granted {
                g.in_use += 1;
                idle_turns = 0;
            }
            if more {
                g.turn.push_back(tenant);
            }
        }
    }

    /// (places in use, requests waiting) for metrics.
    pub fn depth(&self) -> (usize, usize) {
        let g = self.lock();
        (g.in_use, g.tenants.values().map(|t| t.queue.len()).sum())
    }
}

/// Rolling one-minute token accounting per tenant.
///
/// A request reserves the most it could use before it starts (prompt plus
/// `max_tokens` for every choice, or a run's token limit) and settles with
/// what it really used when it ends. Reserving up front is what keeps a
/// burst of concurrent requests, none finished yet, from running far past
/// the quota.
pub struct TokenMeter {
    limit: u64,
    state: Mutex<MeterState>,
}

#[derive(Default)]
struct MeterState {
    next_id: u64,
    used: HashMap<i64, VecDeque<Charge>>,
}

struct Charge {
    at: Instant,
    id: u64,
    tokens: u64,
}

/// Tokens held for a request in flight; hand it back to
/// [`TokenMeter::settle`]. Dropped unsettled, the whole reservation stays
/// charged, which errs on the side of the quota.
#[must_use = "settle the reservation with the tokens really used"]
#[derive(Debug)]
pub struct Reservation {
    tenant: i64,
    id: u64,
}

const WINDOW: Duration = Duration::from_secs(60);

impl TokenMeter {
    pub fn new(limit: u64) -> Self {
        TokenMeter {
            limit,
            state: Mutex::new(MeterState::default()),
        }
    }

    /// Holds `tokens` for `tenant`, or refuses when they do not fit in the
    /// rolling minute. A request larger than the whole quota is held at the
    /// quota, so it runs once the window is empty rather than never.
    pub fn reserve(&self, tenant: i64, tokens: u64) -> Result<Reservation, Refused> {
        let want = tokens.min(self.limit);
        let mut m = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let id = m.next_id;
        let q = m.used.entry(tenant).or_default();
        while q
            .front()
            .is_some_and(|c| now.duration_since(c.at) >= WINDOW)
        {
            q.pop_front();
        }
        let total: u64 = q.iter().map(|c| c.tokens).sum();
        if total + want <= self.limit {
            q.push_back(Charge {
                at: now,
                id,
                tokens: want,
            });
            m.next_id += 1;
            return Ok(Reservation { tenant, id });
        }
        // Retry once enough of the window has expired for this request.
        let mut freed = 0;
        let mut wait = WINDOW;
        for c in q.iter() {
            freed += c.tokens;
            if total - freed + want <= self.limit {
                wait = WINDOW.saturating_sub(now.duration_since(c.at));
                break;
            }
        }
        Err(Refused {
            message: format!(
                "token quota exceeded: {total} of {} tokens per minute used or reserved, \
                 and this request may use up to {tokens}",
                self.limit
            ),
            retry_after_s: wait.as_secs() + 1,
        })
    }

    /// Replaces a reservation with the tokens really used. A request that
    /// outlived the window is charged again, now, for what it used.
    pub fn settle(&self, r: Reservation, used: u64) {
        let mut m = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let q = m.used.entry(r.tenant).or_default();
        match q.iter_mut().find(|c| c.id == r.id) {
            Some(c) => c.tokens = used,
            None if used > 0 => q.push_back(Charge {
                at: Instant::now(),
                id: u64::MAX,
                tokens: used,
            }),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn freed_places_go_round_robin_across_tenants() {
        let gate = FairGate::new(1, 1, 100);
        let first = gate.acquire(1).await.unwrap();
        // Tenant 1 queues three, tenant 2 one: tenant 2 must not wait for all of tenant 1's.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, tenant) in [1, 1, 1, 2].into_iter().enumerate() {
            let (g, o) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let p = g.acquire(tenant).await.unwrap();
                o.lock().unwrap().push(tenant);
                tokio::task::yield_now().await;
                drop(p);
            }));
            // Queue in a known order.
            while gate.depth().1 < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order, vec![1, 2, 1, 1]);
        assert_eq!(gate.depth(), (0, 0));
    }

    #[tokio::test]
    async fn full_queue_is_refused_and_abandoned_waiters_free_their_place() {
        let gate = FairGate::new(4, 1, 1);
        let p = gate.acquire(7).await.unwrap();
        let g2 = gate.clone();
        let waiting = tokio::spawn(async move { g2.acquire(7).await.map(|_| ()) });
        while gate.depth().1 < 1 {
            tokio::task::yield_now().await;
        }
        assert!(gate.acquire(7).await.is_err(), "queue of one is full");
        waiting.abort();
        let _ = waiting.await;
        drop(p);
        assert_eq!(
            gate.depth().0,
            0,
            "the abandoned waiter must not keep a place"
        );
        let _again = gate.acquire(7).await.unwrap();
    }

    #[test]
    fn token_meter_reserves_up_front_and_settles_with_what_was_used() {
        let m = TokenMeter::new(100);
        let a = m.reserve(1, 60).unwrap();
        // A second request that could use 60 more does not fit while the
        // first is in flight, though nothing has been used yet.
        let r = m.reserve(1, 60).unwrap_err();
        assert!(r.retry_after_s >= 1 && r.retry_after_s <= 61, "{r:?}");
        let _held = m.reserve(2, 60).unwrap();
        // The first used only 10: the room comes back.
        m.settle(a, 10);
        let b = m.reserve(1, 60).unwrap();
        m.settle(b, 60);
        assert!(m.reserve(1, 31).is_err());
        let _held = m.reserve(1, 30).unwrap();
    }

    #[test]
    fn a_request_larger_than_the_quota_waits_for_an_empty_window() {
        let m = TokenMeter::new(100);
        let big = m.reserve(1, 10_000).unwrap();
        assert!(m.reserve(1, 1).is_err());
        m.settle(big, 0);
        let _held = m.reserve(1, 10_000).unwrap();
    }
}
