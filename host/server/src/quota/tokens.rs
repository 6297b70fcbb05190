//! [`TokenQuota`]: tokens per tenant per rolling minute.
//!
//! Every charge is made before the tokens are used: a completion reserves
//! the most it could use (each prompt once plus `max_tokens` for every
//! choice), a program run's model calls reserve one by one through the
//! run's [`RunMeter`] (the call's prompt plus its `max_tokens`), and each
//! settles with what it really used when it ends. A run is admitted while
//! the tenant's minute has room for what its runs are likely to use (the
//! moving average of its recent successful runs), and a call that does not fit waits
//! for room (settlements free it, and the window rolls) up to the run's
//! deadline, rather than failing an admitted run.
//!
//! Invariant: the tokens used by the requests and calls that started in any
//! rolling minute never exceed the limit (a request larger than the whole
//! quota is held at the quota). Counted by when tokens are used instead,
//! the minute is overrun only by calls that outlive the window: such a
//! charge expires while the call runs and is made again when it settles,
//! so by at most one reservation per call in flight.

use super::Refused;
use futures::future::BoxFuture;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);

/// The rolling minute of every tenant; share it in an `Arc`.
pub struct TokenQuota {
    limit: u64,
    window: Duration,
    state: Mutex<QuotaState>,
    /// Woken by every settlement, which may free room for waiting calls.
    settled: Notify,
}

#[derive(Default)]
struct QuotaState {
    next_id: u64,
    charges: HashMap<i64, VecDeque<Charge>>,
    /// Tokens a run of the tenant is likely to use: a moving average.
    likely_run: HashMap<i64, u64>,
}

struct Charge {
    at: Instant,
    id: u64,
    tokens: u64,
}

/// Tokens held for a request in flight; hand it back to
/// [`TokenQuota::settle`]. Dropped unsettled, the whole reservation stays
/// charged, which errs on the side of the quota.
#[must_use = "settle the reservation with the tokens really used"]
#[derive(Debug)]
pub struct Reservation {
    tenant: i64,
    id: u64,
}

/// Why `tokens` do not fit now: what the window holds, and how long until
/// enough of it expires, settlements aside.
struct NoRoom {
    total: u64,
    wait: Duration,
}

impl TokenQuota {
    /// `limit` tokens per tenant per rolling minute.
    pub fn new(limit: u64) -> Self {
        Self::with_window(limit, WINDOW)
    }

    fn with_window(limit: u64, window: Duration) -> Self {
        TokenQuota {
            limit,
            window,
            state: Mutex::new(QuotaState::default()),
            settled: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QuotaState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Charges `tokens` to `tenant` now if they fit in its window.
    fn try_reserve(&self, tenant: i64, tokens: u64) -> Result<Reservation, NoRoom> {
        let want = tokens.min(self.limit);
        let mut m = self.lock();
        let now = Instant::now();
        let id = m.next_id;
        let q = m.charges.entry(tenant).or_default();
        while q
            .front()
            .is_some_and(|c| now.duration_since(c.at) >= self.window)
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
        let mut freed = 0;
        let mut wait = self.window;
        for c in q.iter() {
            freed += c.tokens;
            if total - freed + want <= self.limit {
                wait = self.window.saturating_sub(now.duration_since(c.at));
                break;
            }
        }
        Err(NoRoom { total, wait })
    }

    /// Holds `tokens` for `tenant`, or refuses (429) when they do not fit
    /// in the rolling minute. A request larger than the whole quota is held
    /// at the quota, so it runs once the window is empty rather than never.
    pub fn reserve(&self, tenant: i64, tokens: u64) -> Result<Reservation, Refused> {
        self.try_reserve(tenant, tokens).map_err(|n| Refused {
            message: format!(
                "token quota exceeded: {} of {} tokens per minute used or reserved, \
                 and this request may use up to {tokens}",
                n.total, self.limit
            ),
            retry_after_s: n.wait.as_secs() + 1,
        })
    }

    /// Refuses (429) when `tenant`'s minute has no room for what a run of
    /// it likely uses (at least one token): what a program run must pass
    /// to be admitted. Nothing is held; the run's calls reserve later.
    pub fn check_room(&self, tenant: i64) -> Result<(), Refused> {
        let likely = self.lock().likely_run.get(&tenant).copied().unwrap_or(0);
        let r = self
            .try_reserve(tenant, likely.max(1))
            .map_err(|n| Refused {
                message: format!(
                    "token quota exceeded: {} of {} tokens per minute used or reserved, \
                 and a run of this tenant uses about {likely}",
                    n.total, self.limit
                ),
                retry_after_s: n.wait.as_secs() + 1,
            })?;
        self.settle(r, 0);
        Ok(())
    }

    /// Learns from a run of `tenant` that succeeded using `used` tokens.
    pub fn observe_run(&self, tenant: i64, used: u64) {
        let mut m = self.lock();
        let likely = m.likely_run.entry(tenant).or_insert(used);
        *likely = (*likely * 3 + used) / 4;
    }

    /// Holds `tokens` for `tenant`, waiting as long as it takes for them to
    /// fit. Dropping the future gives up the wait and holds nothing.
    pub async fn reserve_waiting(&self, tenant: i64, tokens: u64) -> Reservation {
        loop {
            // Armed before the check, so a settlement in between still wakes it.
            let settled = self.settled.notified();
            match self.try_reserve(tenant, tokens) {
                Ok(r) => return r,
                Err(n) => {
                    tokio::select! {
                        () = settled => {}
                        () = tokio::time::sleep(n.wait) => {}
                    }
                }
            }
        }
    }

    /// Replaces a reservation with the tokens really used. A request that
    /// outlived the window is charged again, now, for what it used.
    pub fn settle(&self, r: Reservation, used: u64) {
        {
            let mut m = self.lock();
            let q = m.charges.entry(r.tenant).or_default();
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
        self.settled.notify_waiters();
    }
}

/// One program run's [`arbor_runtime::TokenMeter`]: its model calls
/// reserve against its tenant's minute and wait for room when it is spent.
pub struct RunMeter {
    quota: Arc<TokenQuota>,
    tenant: i64,
}

impl RunMeter {
    /// The meter of a run of `tenant`.
    pub fn new(quota: Arc<TokenQuota>, tenant: i64) -> Self {
        RunMeter { quota, tenant }
    }
}

impl std::fmt::Debug for RunMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMeter")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl arbor_runtime::TokenMeter for RunMeter {
    fn reserve(
        &self,
        tokens: u64,
    ) -> BoxFuture<'static, Result<arbor_runtime::MeterTicket, String>> {
        let (quota, tenant) = (self.quota.clone(), self.tenant);
        Box::pin(async move {
            let r = quota.reserve_waiting(tenant, tokens).await;
            Ok(arbor_runtime::MeterTicket(r.id))
        })
    }

    fn settle(&self, ticket: arbor_runtime::MeterTicket, used: u64) {
        let r = Reservation {
            tenant: self.tenant,
            id: ticket.0,
        };
        self.quota.settle(r, used);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_up_front_and_settlement_returns_what_was_not_used() {
        let m = TokenQuota::new(100);
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
        assert!(m.check_room(1).is_ok(), "30 tokens are left");
        m.observe_run(1, 40);
        let refused = m.check_room(1).unwrap_err();
        assert!(refused.message.contains("about 40"), "{}", refused.message);
        m.observe_run(1, 0);
        assert!(m.check_room(1).is_ok(), "runs got cheaper: 30 of 100");
        let _held = m.reserve(1, 30).unwrap();
        assert!(m.check_room(1).is_err(), "the minute is spent");
    }

    #[test]
    fn a_request_larger_than_the_quota_waits_for_an_empty_window() {
        let m = TokenQuota::new(100);
        let big = m.reserve(1, 10_000).unwrap();
        assert!(m.reserve(1, 1).is_err());
        m.settle(big, 0);
        let _held = m.reserve(1, 10_000).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_call_proceeds_when_another_settles_or_the_window_rolls() {
        let m = Arc::new(TokenQuota::new(100));
        let a = m.reserve(1, 80).unwrap();
        let t0 = Instant::now();
        let waiter = tokio::spawn({
            let m = m.clone();
            async move { m.reserve_waiting(1, 50).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished(), "80 + 50 do not fit in 100");
        m.settle(a, 10);
        let b = waiter.await.unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(6),
            "woken by the settlement"
        );
        // 60 of 100 are charged now; 50 more wait until the first charge expires.
        m.settle(b, 50);
        let t1 = Instant::now();
        let _c = m.reserve_waiting(1, 50).await;
        assert!(
            t1.elapsed() >= Duration::from_secs(54),
            "{:?}",
            t1.elapsed()
        );
        assert!(
            t0.elapsed() <= WINDOW + Duration::from_secs(1),
            "{:?}",
            t0.elapsed()
        );
    }

    /// Issue 12: the minute stays honest under bursts. Eight callers
    /// reserve, hold (some longer than the window) and settle 25 calls each
    /// of up to 200 tokens against a quota of 1,000.
    #[tokio::test(start_paused = true)]
    async fn bursts_never_overrun_the_minute_by_more_than_one_call_each() {
        const LIMIT: u64 = 1000;
        const CALLERS: u64 = 8;
        const MOST: u64 = 200;
        let m = Arc::new(TokenQuota::new(LIMIT));
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut callers = Vec::new();
        for caller in 0..CALLERS {
            let (m, log) = (m.clone(), log.clone());
            callers.push(tokio::spawn(async move {
                let mut x = caller * 7919 + 1;
                for _ in 0..25 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let r = x >> 33;
                    let want = 20 + r % (MOST - 19);
                    let used = want * (r % 4 + 1) / 4;
                    let hold = Duration::from_secs(r % 90);
                    let res = m.reserve_waiting(7, want).await;
                    let started = Instant::now();
                    tokio::time::sleep(hold).await;
                    m.settle(res, used);
                    log.lock().unwrap().push((started, Instant::now(), used));
                }
            }));
        }
        for c in callers {
            c.await.unwrap();
        }
        let log = log.lock().unwrap().clone();
        let within = |t: Instant, at: Instant| at <= t && t.duration_since(at) < WINDOW;
        for &(t, _, _) in &log {
            let started: u64 = log.iter().filter(|e| within(t, e.0)).map(|e| e.2).sum();
            assert!(started <= LIMIT, "calls started in a minute used {started}");
        }
        let mut worst = 0;
        for &(_, t, _) in &log {
            let used: u64 = log.iter().filter(|e| within(t, e.1)).map(|e| e.2).sum();
            worst = worst.max(used);
        }
        assert!(
            worst <= LIMIT + CALLERS * MOST,
            "a minute saw {worst} tokens settled"
        );
        let total: u64 = log.iter().map(|e| e.2).sum();
        assert!(
            total > 10 * LIMIT,
            "the demand ({total}) must exceed the quota many times"
        );
    }
}
