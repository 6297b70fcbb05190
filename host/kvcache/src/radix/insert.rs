//! `insert`: moving a finished prefill or sequence into the cache.

use std::collections::HashSet;

use super::RadixCache;
use super::walk::Pos;
use crate::arena::{Idx, NodeId};
use crate::error::CacheError;
use crate::mount::MountKey;
use crate::namespace::Namespace;
use crate::node::Node;

/// What [`RadixCache::insert`] did with the caller's slots.
///
/// Ownership contract: of the slots passed in, those at positions
/// `existing_len..` now belong to the cache; those listed in `duplicates`
/// were not taken and **must be freed by the caller**; any other slot (one
/// the caller had obtained from the cache, e.g. via `match_prefix`) stays
/// the cache's and must not be freed.
#[must_use = "duplicate slots must be freed by the caller"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Node at the end of the whole inserted sequence: lock it to keep the
    /// sequence cached (e.g. for a request that keeps decoding). Same rules
    /// as [`PrefixMatch::node`](crate::PrefixMatch::node).
    pub node: NodeId,
    /// Leading tokens that were already cached (in this namespace or the
    /// public one); the rest were added.
    pub existing_len: usize,
    /// Caller slots for already-cached tokens that the cache neither took
    /// nor owns. The caller frees them.
    pub duplicates: Vec<u32>,
    /// The cache's slots for the whole sequence. A request that keeps
    /// running should use these as its history, since its own slots for
    /// the already-cached part may be in `duplicates`.
    pub slots: Vec<u32>,
}

impl RadixCache {
    /// Caches `tokens` (whose K/V live in `slots`, one per token) in `ns`.
    /// Use [`Namespace::PUBLIC`] (or [`insert_public`](Self::insert_public))
    /// to make the prefix visible to every namespace.
    ///
    /// The longest prefix already visible to `ns` is kept as is (its slots
    /// win); only the remainder is added, as a child of that prefix's end.
    /// See [`InsertOutcome`] for who owns which slot afterwards.
    ///
    /// Fails, changing nothing, when lengths differ, a slot is out of the
    /// pool or listed twice, or a slot for a new token is already owned by
    /// the cache (it would end up with two owners).
    pub fn insert(
        &mut self,
        ns: Namespace,
        tokens: &[u32],
        slots: &[u32],
    ) -> Result<InsertOutcome, CacheError> {
        if tokens.len() != slots.len() {
            return Err(CacheError::LengthMismatch {
                tokens: tokens.len(),
                slots: slots.len(),
            });
        }
        let mut seen = HashSet::with_capacity(slots.len());
        for &slot in slots {
            if slot >= self.pool_size {
                return Err(CacheError::SlotOutOfRange {
                    slot,
                    pool_size: self.pool_size,
                });
            }
            if !seen.insert(slot) {
                return Err(CacheError::DuplicateSlot(slot));
            }
        }
        let found = self.find(ns, tokens);
        let existing = found.len;
        if let Some(&slot) = slots[existing..].iter().find(|&&s| self.owned[s as usize]) {
            return Err(CacheError::SlotOwned(slot));
        }

        // Validated; from here on nothing fails.
        let mut tree_slots = self.path_slots(found.pos);
        // Slots the cache owns are the caller's view of our data, possibly
        // through another branch than the one chosen now; never hand those
        // back for freeing.
        let duplicates: Vec<u32> = slots[..existing]
            .iter()
            .copied()
            .filter(|&s| !self.owned[s as usize])
            .collect();
        let now = self.tick();
        let node = if existing < tokens.len() {
            self.add_node(ns, found.pos, &tokens[existing..], &slots[existing..], now)
        } else {
            self.settle(ns, found.pos)
        };
        self.touch_path(node, now);
        tree_slots.extend_from_slice(&slots[existing..]);
        self.stats.inserted_tokens += (tokens.len() - existing) as u64;
        self.stats.duplicate_tokens += duplicates.len() as u64;
        Ok(InsertOutcome {
            node: self.arena.id(node),
            existing_len: existing,
            duplicates,
            slots: tree_slots,
        })
    }

    /// [`insert`](Self::insert) into [`Namespace::PUBLIC`].
    pub fn insert_public(
        &mut self,
        tokens: &[u32],
        slots: &[u32],
    ) -> Result<InsertOutcome, CacheError> {
        self.insert(Namespace::PUBLIC, tokens, slots)
    }

    /// Hangs a new `ns` node holding `tokens`/`slots` at `pos`, the end of
    /// the longest match, so no child there starts with `tokens[0]`.
    fn add_node(
        &mut self,
        ns: Namespace,
        pos: Pos,
        tokens: &[u32],
        slots: &[u32],
        now: u64,
    ) -> Idx {
        let at_ns = self.arena.get(pos.node).ns;
        for &s in slots {
            self.owned[s as usize] = true;
        }
        self.sizes.add_unlocked(tokens.len());
        let first = tokens[0];
        let parent;
        let child;
        if at_ns == ns {
            parent = self.settle(ns, pos);
            child = self.arena.insert(Node::new(
                Some(parent),
                0,
                ns,
                tokens.to_vec(),
                slots.to_vec(),
                now,
            ));
            let prev = self.arena.get_mut(parent).children.insert(first, child);
            debug_assert!(prev.is_none(), "insert below a non-maximal match");
        } else {
            // A tenant continuing from a public position: mount, don't split.
            debug_assert!(at_ns.is_public() && !ns.is_public());
            parent = pos.node;
            child = self.arena.insert(Node::new(
                Some(parent),
                pos.offset,
                ns,
                tokens.to_vec(),
                slots.to_vec(),
                now,
            ));
            let key = MountKey {
                node: parent,
                offset: pos.offset,
                token: first,
            };
            self.tenants.entry(ns).or_default().insert(key, child);
            self.arena.get_mut(parent).mounted.insert(child);
        }
        self.refresh_lru(child);
        self.refresh_lru(parent);
        child
    }
}
