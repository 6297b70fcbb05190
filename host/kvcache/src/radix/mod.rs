//! The radix tree over token ids.
//!
//! Token granularity (page size 1): every node owns one pool slot per edge
//! token. The tree is split across files by operation; this file holds the
//! shared state and the small helpers every operation uses.

mod evict;
mod insert;
mod inspect;
mod invariants;
mod lock;
mod matching;
mod split;
mod walk;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::arena::{Arena, Idx, NodeId};
use crate::lru::LruIndex;
use crate::mount::MountTable;
use crate::namespace::Namespace;
use crate::node::Node;
use crate::stats::{CacheStats, Sizes};

pub use insert::InsertOutcome;
pub use invariants::InvariantViolation;
pub use matching::PrefixMatch;

/// Prefix cache over token ids, mapping cached prefixes to KV pool slots.
///
/// The cache owns the slots of every cached token; the caller owns the
/// [`SlotAllocator`](crate::SlotAllocator) and moves slots in with
/// [`insert`](Self::insert) and gets them back from [`evict`](Self::evict)
/// (and as duplicates from `insert`). Running requests [`lock`](Self::lock)
/// the node their history ends at so it cannot be evicted under them; forked
/// branches simply lock the same node again.
#[derive(Debug)]
pub struct RadixCache {
    arena: Arena,
    root: Idx,
    /// Per-tenant mount tables; see `Namespace`'s docs.
    tenants: HashMap<Namespace, MountTable>,
    lru: LruIndex,
    /// `owned[slot]`: some node owns `slot`. Lets `insert` refuse to take a
    /// slot twice and tell duplicates from slots the caller got from us.
    owned: Vec<bool>,
    pool_size: u32,
    /// Logical clock for LRU; bumped by every match and insert.
    clock: u64,
    sizes: Sizes,
    stats: CacheStats,
}

impl RadixCache {
    /// An empty cache for a pool of `pool_size` slots (`0..pool_size`).
    pub fn new(pool_size: u32) -> Self {
        let mut arena = Arena::new();
        let root = arena.insert(Node::new(
            None,
            0,
            Namespace::PUBLIC,
            Vec::new(),
            Vec::new(),
            0,
        ));
        RadixCache {
            arena,
            root,
            tenants: HashMap::new(),
            lru: LruIndex::default(),
            owned: vec![false; pool_size as usize],
            pool_size,
            clock: 0,
            sizes: Sizes::default(),
            stats: CacheStats::default(),
        }
    }

    /// The pool size given to [`new`](Self::new).
    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    /// Cached tokens not on any locked path (what [`evict`](Self::evict) can free).
    pub fn evictable_size(&self) -> usize {
        self.sizes.evictable
    }

    /// Cached tokens on a locked path.
    pub fn protected_size(&self) -> usize {
        self.sizes.protected
    }

    /// All cached tokens (= slots owned by the cache).
    pub fn total_size(&self) -> usize {
        self.sizes.total
    }

    /// Number of nodes, the root excluded.
    pub fn node_count(&self) -> usize {
        self.arena.len() - 1
    }

    /// Whether some node owns `slot`.
    pub fn is_slot_owned(&self, slot: u32) -> bool {
        self.owned.get(slot as usize).copied().unwrap_or(false)
    }

    /// Sizes and cumulative counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            cached_tokens: self.sizes.total,
            evictable_tokens: self.sizes.evictable,
            protected_tokens: self.sizes.protected,
            nodes: self.node_count(),
            ..self.stats
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Resolves a caller's handle.
    fn resolve(&self, id: NodeId) -> Result<Idx, crate::CacheError> {
        self.arena
            .resolve(id)
            .ok_or(crate::CacheError::StaleNode(id))
    }

    /// Puts `idx` into or out of the LRU index according to whether it is
    /// now an evictable leaf. Every change to a node's children, mounts or
    /// lock count must be followed by this.
    fn refresh_lru(&mut self, idx: Idx) {
        let root = self.root;
        let n = self.arena.get_mut(idx);
        let evictable = idx != root && n.is_leaf() && n.lock_ref == 0;
        if evictable != n.in_lru {
            n.in_lru = evictable;
            let t = n.last_access;
            if evictable {
                self.lru.insert(t, idx);
            } else {
                self.lru.remove(t, idx);
            }
        }
    }

    /// Marks `idx` and all its ancestors as accessed at `now`.
    fn touch_path(&mut self, idx: Idx, now: u64) {
        let mut cur = Some(idx);
        while let Some(i) = cur {
            let n = self.arena.get_mut(i);
            let old = n.last_access;
            n.last_access = now;
            cur = n.parent;
            if n.in_lru {
                self.lru.remove(old, i);
                self.lru.insert(now, i);
            }
        }
    }

    /// Slots of the path from the root to `pos`, in token order.
    fn path_slots(&self, pos: walk::Pos) -> Vec<u32> {
        let mut segments = Vec::new();
        let mut node = pos.node;
        let mut upto = pos.offset as usize;
        loop {
            let n = self.arena.get(node);
            segments.push(&n.slots[..upto]);
            match n.parent {
                Some(p) => {
                    let parent = self.arena.get(p);
                    upto = if parent.ns == n.ns {
                        parent.len()
                    } else {
                        n.attach as usize
                    };
                    node = p;
                }
                None => break,
            }
        }
        let mut out = Vec::with_capacity(segments.iter().map(|s| s.len()).sum());
        for seg in segments.iter().rev() {
            out.extend_from_slice(seg);
        }
        out
    }
}
