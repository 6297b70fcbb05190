//! Read-only views the KV manager needs for its accounting: which slots a
//! locked node protects, and which slots eviction could free. Crate-private
//! because they expose the tree's internals to the one owner of its slots.

use super::RadixCache;
use super::walk::Pos;
use crate::arena::NodeId;

impl RadixCache {
    /// Slots of the whole path from the root to the end of `id`'s edge, in
    /// token order, or `None` for a stale or foreign handle.
    pub(crate) fn node_path_slots(&self, id: NodeId) -> Option<Vec<u32>> {
        let idx = self.arena.resolve(id)?;
        let offset = self.arena.get(idx).len() as u32;
        Some(self.path_slots(Pos { node: idx, offset }))
    }

    /// Slots of every node on no locked path: exactly what evicting
    /// everything evictable would give back.
    pub(crate) fn evictable_slots(&self) -> Vec<u32> {
        self.arena
            .iter()
            .filter(|&(idx, n)| idx != self.root && n.lock_ref == 0)
            .flat_map(|(_, n)| n.slots.iter().copied())
            .collect()
    }

    /// Sum of every node's own locks, so an owner that takes all locks can
    /// check that it accounts for each one.
    pub(crate) fn direct_lock_total(&self) -> u64 {
        self.arena
            .iter()
            .map(|(_, n)| u64::from(n.direct_locks))
            .sum()
    }
}
