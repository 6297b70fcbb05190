//! LRU eviction of unlocked leaves.

use super::RadixCache;
use crate::arena::Idx;
use crate::mount::MountKey;

impl RadixCache {
    /// Evicts least recently used unlocked leaves until at least `n_slots`
    /// slots are freed or nothing evictable is left, and returns the freed
    /// slots for the caller to give back to its allocator. Whole nodes are
    /// evicted, so slightly more than `n_slots` may come back. A parent left
    /// childless becomes a candidate in turn. Each node costs O(log n) plus
    /// its edge length.
    pub fn evict(&mut self, n_slots: usize) -> Vec<u32> {
        let mut freed = Vec::new();
        while freed.len() < n_slots {
            let Some(idx) = self.lru.pop_oldest() else {
                break;
            };
            self.arena.get_mut(idx).in_lru = false;
            self.remove_leaf(idx, &mut freed);
        }
        freed
    }

    fn remove_leaf(&mut self, idx: Idx, freed: &mut Vec<u32>) {
        let node = self.arena.remove(idx);
        debug_assert!(node.is_leaf() && node.lock_ref == 0 && !node.in_lru);
        for &s in &node.slots {
            self.owned[s as usize] = false;
        }
        freed.extend_from_slice(&node.slots);
        self.sizes.remove_unlocked(node.len());
        self.stats.evictions += 1;
        self.stats.evicted_tokens += node.len() as u64;

        let parent = node.parent.expect("the root is never evicted");
        let first = node.tokens[0];
        if self.arena.get(parent).ns == node.ns {
            self.arena.get_mut(parent).children.remove(&first);
        } else {
            let key = MountKey {
                node: parent,
                offset: node.attach,
                token: first,
            };
            let table = self.tenants.get_mut(&node.ns).expect("mount table");
            table.remove(key);
            // Don't let tenants that come and go leave empty tables behind.
            if table.is_empty() {
                self.tenants.remove(&node.ns);
            }
            self.arena.get_mut(parent).mounted.remove(&idx);
        }
        self.refresh_lru(parent);
    }
}
