//! [`FairGate`]: places in the scheduler, shared round-robin by tenants.
//!
//! Invariant: a tenant never holds more than its share of places, and a
//! freed place goes to the next tenant in turn that has a waiter.

use super::Refused;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

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

/// A place taken in the gate: granted, or queued until a permit comes.
enum Place {
    Granted(Permit),
    Queued(oneshot::Receiver<Permit>),
}

async fn wait(place: Place) -> Result<Permit, Refused> {
    match place {
        Place::Granted(p) => Ok(p),
        Place::Queued(rx) => rx.await.map_err(|_| Refused {
            message: "the server is shutting down".into(),
            retry_after_s: 5,
        }),
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
        let place = self.enqueue(tenant, true);
        wait(place?).await
    }

    /// Takes `tenant`'s next place in its queue now, however long the queue
    /// (for runs a restart re-queues, admitted once already), and returns
    /// the wait for it: calls in order keep their order.
    pub fn acquire_unbounded(
        &self,
        tenant: i64,
    ) -> impl Future<Output = Result<Permit, Refused>> + Send + 'static {
        let place = self.enqueue(tenant, false);
        async move { wait(place?).await }
    }

    fn enqueue(&self, tenant: i64, bounded: bool) -> Result<Place, Refused> {
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
                return Ok(Place::Granted(Permit {
                    gate: Some(self.clone()),
                    tenant,
                }));
            }
            if bounded && t.queue.len() >= max_queued {
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
        Ok(Place::Queued(rx))
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
}
