//! [`KvManager`]: the one owner of KV pool slots, page-aware.
//!
//! The pool has `pool_slots` token slots in pages of `P` (page `p` is slots
//! `p*P .. p*P+P`). Pages are handed out whole; matching stays token
//! granular in the [`RadixCache`]. Every sequence is page-consistent:
//! position `i` lives in slot `pages[i / P] * P + i % P`, so an engine with
//! paged attention reads its block table off `slots().chunks(P)`. A cached
//! page is shared only when it is full and lies in one physical page;
//! otherwise the matched tokens of that page are copied into a private page
//! ([`SlotCopy`]).
//!
//! # Invariant
//!
//! Each slot has a count of owners: the tree (for slots it owns) and each
//! sequence that holds it (its own positions, the unused tail of its last
//! page, pinned copy sources, pages a fork shares with its parent). A
//! page's live count is its number of owned slots, and a page is free iff
//! that is 0. Hence
//!
//! `free + cached + private + fragmented == pool_slots`,
//!
//! where free = slots of free pages, cached = tree-owned slots, private =
//! other owned slots, fragmented = unowned slots of live pages (0 when
//! `P == 1`). Every slot a sequence reads but does not hold is the tree's,
//! on the path of a node the sequence has locked. A slot a sequence may
//! still rewrite has no other owner: its tail none at all, its positions
//! past its floor (which `truncate` may drop) none but forks' pins of
//! pending copies, which `truncate` keeps until the copy has run. So no
//! copy source is overwritten before it is read. [`KvManager::audit`]
//! checks all of this against a recount from the live sequences.

mod admit;
mod allocate;
mod audit;
mod commit;
mod error;
mod pages;
mod seq;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::namespace::Namespace;
use crate::radix::RadixCache;
use crate::stats::CacheStats;
use pages::PagePool;

pub use audit::KvAudit;
pub use error::{KvConfigError, KvError};
pub use seq::{SeqKv, SlotCopy};

/// Tells managers apart, so a sequence handed to the wrong one is caught.
static NEXT_MANAGER_ID: AtomicU64 = AtomicU64::new(0);

/// Owns the [`RadixCache`] and the page allocator of one engine's KV pool,
/// and every slot in it; live sequences are [`SeqKv`]s issued by
/// [`admit`](Self::admit) and [`fork`](Self::fork).
#[derive(Debug)]
pub struct KvManager {
    id: u64,
    cache: RadixCache,
    pages: PagePool,
    cache_enabled: bool,
}

impl KvManager {
    /// A manager for a pool of `pool_slots` slots in pages of `page_size`.
    /// `pool_slots` must be a positive multiple of `page_size >= 1`. With
    /// `cache_enabled` false nothing is ever matched or cached.
    pub fn new(
        pool_slots: u32,
        page_size: u32,
        cache_enabled: bool,
    ) -> Result<Self, KvConfigError> {
        if page_size == 0 {
            return Err(KvConfigError::ZeroPageSize);
        }
        if pool_slots == 0 {
            return Err(KvConfigError::EmptyPool);
        }
        if !pool_slots.is_multiple_of(page_size) {
            return Err(KvConfigError::NotPageMultiple {
                pool_slots,
                page_size,
            });
        }
        Ok(KvManager {
            id: NEXT_MANAGER_ID.fetch_add(1, Ordering::Relaxed),
            cache: RadixCache::new(pool_slots),
            pages: PagePool::new(pool_slots, page_size),
            cache_enabled,
        })
    }

    /// Slots per page (`P`).
    pub fn page_size(&self) -> usize {
        self.pages.page_size() as usize
    }

    /// Slots in the pool.
    pub fn pool_slots(&self) -> usize {
        self.pages.num_slots()
    }

    /// Whether prefixes are matched and cached.
    pub fn cache_enabled(&self) -> bool {
        self.cache_enabled
    }

    /// Length of the cached prefix of `tokens` visible to `ns` that
    /// [`admit`](Self::admit) would match now (so at most
    /// `tokens.len() - 1`); 0 when the cache is off. Does not touch LRU.
    pub fn peek(&self, ns: Namespace, tokens: &[u32]) -> usize {
        match tokens.split_last() {
            Some((_, head)) if self.cache_enabled => self.cache.peek_prefix_len(ns, head),
            _ => 0,
        }
    }

    /// Evicts at least `n` evictable cached tokens, least recently used
    /// first, whole nodes at a time (so a few more may go), or all there
    /// are. Returns the number of slots the cache gave up; with `P > 1`
    /// some may stay allocated, fragmented, in pages still partly live.
    pub fn evict(&mut self, n: usize) -> usize {
        let freed = self.cache.evict(n);
        for &s in &freed {
            self.pages.drop_hold(s);
        }
        freed.len()
    }

    /// Slots in free pages.
    pub fn free_slots(&self) -> usize {
        self.pages.free_pages() * self.page_size()
    }

    /// Cached tokens on no live sequence's path.
    pub fn evictable_tokens(&self) -> usize {
        self.cache.evictable_size()
    }

    /// The cache's sizes and counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Read access to the underlying cache, for diagnostics.
    pub fn cache(&self) -> &RadixCache {
        &self.cache
    }

    /// Pages that would be free after evicting everything evictable: free
    /// pages plus pages whose every live slot is an evictable tree slot
    /// nobody else holds.
    fn obtainable_pages(&self) -> usize {
        let mut dying = vec![0u32; self.pages.num_pages()];
        for s in self.cache.evictable_slots() {
            if self.pages.holders(s) == 1 {
                dying[self.pages.page_of(s) as usize] += 1;
            }
        }
        let freeable = dying
            .iter()
            .enumerate()
            .filter(|&(p, &d)| d > 0 && d == self.pages.live(p as u32))
            .count();
        self.pages.free_pages() + freeable
    }

    /// Makes `n` pages free, evicting LRU entries as needed. Fails, having
    /// evicted nothing, when even evicting everything would not do.
    fn ensure_free_pages(&mut self, n: usize) -> Result<(), KvError> {
        if self.pages.free_pages() >= n {
            return Ok(());
        }
        let p = self.page_size();
        let obtainable = self.obtainable_pages();
        if obtainable < n {
            return Err(KvError::OutOfSlots {
                needed: n * p,
                available: obtainable * p,
            });
        }
        while self.pages.free_pages() < n {
            // LRU order frees pages only incidentally, so ask for the whole
            // shortfall each round; it shrinks or the cache empties.
            if self.evict((n - self.pages.free_pages()) * p) == 0 {
                debug_assert!(false, "obtainable pages miscounted");
                return Err(KvError::OutOfSlots {
                    needed: n * p,
                    available: self.free_slots(),
                });
            }
        }
        Ok(())
    }

    /// Releases pinned copy sources once the copies have been taken: by
    /// the time the caller comes back about this sequence they have run.
    fn unpin_if_done(&mut self, seq: &mut SeqKv) {
        if seq.copies.is_empty() {
            for s in std::mem::take(&mut seq.pins) {
                self.pages.drop_hold(s);
            }
        }
    }

    fn check_owner(&self, seq: &SeqKv) {
        assert_eq!(
            seq.owner, self.id,
            "SeqKv handed to a KvManager that did not issue it"
        );
    }
}
