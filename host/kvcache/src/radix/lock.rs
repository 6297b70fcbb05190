//! Reference counts of running requests on cached paths.

use super::RadixCache;
use crate::arena::NodeId;
use crate::error::CacheError;

impl RadixCache {
    /// Protects the path from `node` to the root from eviction until the
    /// matching [`unlock`](Self::unlock). Any number of requests may lock the
    /// same node (e.g. the branches of a fork sharing their history).
    pub fn lock(&mut self, node: NodeId) -> Result<(), CacheError> {
        let idx = self.resolve(node)?;
        // The root's count bounds every other count on any path.
        if self.arena.get(self.root).lock_ref == u32::MAX {
            return Err(CacheError::LockOverflow);
        }
        self.arena.get_mut(idx).direct_locks += 1;
        let mut cur = Some(idx);
        while let Some(i) = cur {
            let n = self.arena.get_mut(i);
            if n.lock_ref == 0 {
                self.sizes.protect(n.len());
            }
            n.lock_ref += 1;
            cur = n.parent;
            self.refresh_lru(i);
        }
        Ok(())
    }

    /// Releases one [`lock`](Self::lock) on `node`. Fails, changing nothing,
    /// if `node` holds no lock of its own (locks on descendants don't count),
    /// so counts can never drop below what is actually held.
    pub fn unlock(&mut self, node: NodeId) -> Result<(), CacheError> {
        let idx = self.resolve(node)?;
        let n = self.arena.get_mut(idx);
        if n.direct_locks == 0 {
            return Err(CacheError::NotLocked(node));
        }
        n.direct_locks -= 1;
        let mut cur = Some(idx);
        while let Some(i) = cur {
            let n = self.arena.get_mut(i);
            n.lock_ref -= 1;
            cur = n.parent;
            if n.lock_ref == 0 {
                self.sizes.unprotect(n.len());
            }
            self.refresh_lru(i);
        }
        Ok(())
    }

    /// Locks held directly on `node` (not counting its descendants').
    pub fn lock_count(&self, node: NodeId) -> Result<u32, CacheError> {
        Ok(self.arena.get(self.resolve(node)?).direct_locks)
    }
}
