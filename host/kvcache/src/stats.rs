//! Cache statistics.

use serde::Serialize;

/// A snapshot of the cache's sizes and cumulative counters.
///
/// Sizes are in tokens (= slots, page size 1). Counters accumulate since
/// the cache was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Tokens held by the tree (`evictable_tokens + protected_tokens`).
    pub cached_tokens: usize,
    /// Cached tokens on no running request's path: what `evict` can free.
    pub evictable_tokens: usize,
    /// Cached tokens on some locked path.
    pub protected_tokens: usize,
    /// Tree nodes, the root excluded.
    pub nodes: usize,
    /// `match_prefix` calls.
    pub matches: u64,
    /// Tokens passed to `match_prefix` (prompt tokens queried).
    pub queried_tokens: u64,
    /// Tokens `match_prefix` found cached.
    pub hit_tokens: u64,
    /// Tokens newly cached by `insert`.
    pub inserted_tokens: u64,
    /// Caller slots `insert` handed back as duplicates.
    pub duplicate_tokens: u64,
    /// Nodes evicted.
    pub evictions: u64,
    /// Tokens (slots) freed by eviction.
    pub evicted_tokens: u64,
}

impl CacheStats {
    /// `hit_tokens / queried_tokens`, or 0 before any query.
    pub fn hit_rate(&self) -> f64 {
        if self.queried_tokens == 0 {
            0.0
        } else {
            self.hit_tokens as f64 / self.queried_tokens as f64
        }
    }
}

/// Running token totals, kept in step with inserts, evictions and lock
/// transitions so the size queries are O(1). `check_invariants` recomputes
/// all three from the nodes, which is why `total` is kept separately even
/// though it should always equal the sum of the other two.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Sizes {
    pub total: usize,
    pub evictable: usize,
    pub protected: usize,
}

impl Sizes {
    /// A new node's tokens (always unlocked when created).
    pub(crate) fn add_unlocked(&mut self, n: usize) {
        self.total += n;
        self.evictable += n;
    }

    /// An evicted node's tokens (always unlocked when evicted).
    pub(crate) fn remove_unlocked(&mut self, n: usize) {
        self.total -= n;
        self.evictable -= n;
    }

    /// Moves `n` tokens from evictable to protected (a node's first lock).
    pub(crate) fn protect(&mut self, n: usize) {
        self.evictable -= n;
        self.protected += n;
    }

    /// Moves `n` tokens from protected to evictable (a node's last unlock).
    pub(crate) fn unprotect(&mut self, n: usize) {
        self.protected -= n;
        self.evictable += n;
    }
}
