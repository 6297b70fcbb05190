//! The free list of KV pool slots.

use crate::error::AllocError;

/// Hands out KV pool slots `0..num_slots`.
///
/// Besides the free list it keeps one bit of state per slot, so double frees
/// and frees of unknown slots are caught instead of putting a slot on the
/// free list twice (which would later hand one slot to two sequences).
#[derive(Debug, Clone)]
pub struct SlotAllocator {
    free_list: Vec<u32>,
    is_free: Vec<bool>,
}

impl SlotAllocator {
    /// A pool with every slot in `0..num_slots` free.
    pub fn new(num_slots: u32) -> Self {
        // Reversed so that `alloc` pops low ids first: easier to read in logs.
        let free_list = (0..num_slots).rev().collect();
        Self {
            free_list,
            is_free: vec![true; num_slots as usize],
        }
    }

    /// Total number of slots in the pool.
    pub fn num_slots(&self) -> u32 {
        // Constructed from a u32, so this never truncates.
        self.is_free.len() as u32
    }

    /// Slots currently free.
    pub fn num_free(&self) -> usize {
        self.free_list.len()
    }

    /// Slots currently handed out.
    pub fn num_used(&self) -> usize {
        self.is_free.len() - self.free_list.len()
    }

    /// Whether `slot` is in the pool and currently free.
    pub fn is_free(&self, slot: u32) -> bool {
        self.is_free.get(slot as usize).copied().unwrap_or(false)
    }

    /// Takes `n` slots, or none at all when fewer than `n` are free, so a
    /// caller never has to roll back a partial allocation.
    pub fn alloc(&mut self, n: usize) -> Option<Vec<u32>> {
        if n > self.free_list.len() {
            return None;
        }
        let taken = self.free_list.split_off(self.free_list.len() - n);
        for &slot in &taken {
            self.is_free[slot as usize] = false;
        }
        Some(taken)
    }

    /// Returns slots to the pool, all or nothing: if any slot is unknown,
    /// already free, or listed twice, nothing is freed and the first such
    /// slot is reported.
    pub fn try_free(&mut self, slots: &[u32]) -> Result<(), AllocError> {
        let num_slots = self.num_slots();
        // Mark as we validate so a slot listed twice is caught; undo on error.
        for (i, &slot) in slots.iter().enumerate() {
            let err = match self.is_free.get(slot as usize) {
                None => Some(AllocError::UnknownSlot { slot, num_slots }),
                Some(true) => Some(AllocError::DoubleFree(slot)),
                Some(false) => None,
            };
            if let Some(err) = err {
                for &done in &slots[..i] {
                    self.is_free[done as usize] = false;
                }
                return Err(err);
            }
            self.is_free[slot as usize] = true;
        }
        self.free_list.extend_from_slice(slots);
        Ok(())
    }

    /// Returns slots to the pool. A bad free is a caller bug: it asserts in
    /// debug builds; in release builds it is logged and the whole call is
    /// ignored (see [`try_free`](Self::try_free)), leaking rather than
    /// corrupting the pool.
    pub fn free(&mut self, slots: &[u32]) {
        if let Err(err) = self.try_free(slots) {
            debug_assert!(false, "SlotAllocator::free: {err}");
            tracing::error!(%err, "rejected invalid free of KV slots");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_is_all_or_nothing() {
        let mut a = SlotAllocator::new(4);
        let first = a.alloc(3).unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(a.num_free(), 1);
        assert!(a.alloc(2).is_none());
        assert_eq!(a.num_free(), 1, "failed alloc must not take anything");
        assert_eq!(a.alloc(0), Some(vec![]));
        let last = a.alloc(1).unwrap();
        let mut all: Vec<u32> = first.iter().chain(&last).copied().collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
        assert_eq!(a.num_used(), 4);
    }

    #[test]
    fn bad_frees_are_rejected_atomically() {
        let mut a = SlotAllocator::new(4);
        let s = a.alloc(2).unwrap();
        let free_slot = (0..4).find(|x| !s.contains(x)).unwrap();
        assert_eq!(
            a.try_free(&[s[0], 9]),
            Err(AllocError::UnknownSlot {
                slot: 9,
                num_slots: 4
            })
        );
        assert_eq!(
            a.try_free(&[s[0], free_slot]),
            Err(AllocError::DoubleFree(free_slot))
        );
        assert_eq!(a.try_free(&[s[0], s[0]]), Err(AllocError::DoubleFree(s[0])));
        // Nothing was freed by the failed calls.
        assert!(!a.is_free(s[0]));
        assert_eq!(a.num_free(), 2);
        a.try_free(&s).unwrap();
        assert_eq!(a.num_free(), 4);
        assert_eq!(a.try_free(&[s[1]]), Err(AllocError::DoubleFree(s[1])));
        assert_eq!(a.num_free(), 4);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "freed twice")]
    fn unchecked_double_free_asserts_in_debug() {
        let mut a = SlotAllocator::new(2);
        a.free(&[0]);
    }
}
