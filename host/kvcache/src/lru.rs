//! Ordered index of evictable leaves by last access time.
//!
//! Maintained incrementally as nodes gain/lose children and locks, so an
//! eviction is a `pop_first` (O(log n)) instead of a scan or heap rebuild
//! over the whole tree.

use std::collections::BTreeSet;

use crate::arena::Idx;

#[derive(Debug, Default)]
pub(crate) struct LruIndex {
    // The index breaks ties between equal times deterministically.
    set: BTreeSet<(u64, Idx)>,
}

impl LruIndex {
    pub(crate) fn insert(&mut self, last_access: u64, idx: Idx) {
        let fresh = self.set.insert((last_access, idx));
        debug_assert!(fresh);
    }

    pub(crate) fn remove(&mut self, last_access: u64, idx: Idx) {
        let present = self.set.remove(&(last_access, idx));
        debug_assert!(present);
    }

    pub(crate) fn pop_oldest(&mut self) -> Option<Idx> {
        self.set.pop_first().map(|(_, idx)| idx)
    }

    pub(crate) fn contains(&self, last_access: u64, idx: Idx) -> bool {
        self.set.contains(&(last_access, idx))
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}
