//! Exhaustive accounting of the pool against the live sequences.

use std::collections::HashMap;

use serde::Serialize;

use super::{KvManager, SeqKv};
use crate::arena::NodeId;

/// Where every pool slot is, and whether the module invariant holds (see
/// [`KvManager`]'s module docs).
#[derive(Debug, Clone, Serialize)]
pub struct KvAudit {
    /// Slots in the pool.
    pub pool_slots: usize,
    /// Slots per page.
    pub page_size: usize,
    /// Slots of free pages.
    pub free_slots: usize,
    /// Slots owned by the cache.
    pub cached_slots: usize,
    /// Cached slots on a locked path (a subset of `cached_slots`).
    pub locked_slots: usize,
    /// Slots held by live sequences and not owned by the cache.
    pub private_slots: usize,
    /// Unowned slots of pages that are still partly live.
    pub fragmented_slots: usize,
    /// The first broken invariant, if any.
    pub invariants: Result<(), String>,
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

impl KvManager {
    /// Counts every slot and checks every invariant, given all live
    /// sequences of this manager (each exactly once). O(pool + cached
    /// tokens + the sequences' lengths, times their lock count).
    pub fn audit<'a>(&self, seqs: impl IntoIterator<Item = &'a SeqKv>) -> KvAudit {
        let seqs: Vec<&SeqKv> = seqs.into_iter().collect();
        let p = self.page_size();
        let (mut private, mut fragmented) = (0, 0);
        for s in 0..self.pool_slots() as u32 {
            let owned = self.pages.holders(s) > 0;
            if owned && !self.cache.is_slot_owned(s) {
                private += 1;
            } else if !owned && self.pages.live(self.pages.page_of(s)) > 0 {
                fragmented += 1;
            }
        }
        let mut audit = KvAudit {
            pool_slots: self.pool_slots(),
            page_size: p,
            free_slots: self.free_slots(),
            cached_slots: self.cache.total_size(),
            locked_slots: self.cache.protected_size(),
            private_slots: private,
            fragmented_slots: fragmented,
            invariants: Ok(()),
        };
        audit.invariants = self.check(&seqs, &audit);
        audit
    }

    fn check(&self, seqs: &[&SeqKv], a: &KvAudit) -> Result<(), String> {
        self.cache
            .check_invariants(self.pool_slots() as u32)
            .map_err(|e| e.to_string())?;
        self.pages.check()?;
        ensure!(
            a.free_slots + a.cached_slots + a.private_slots + a.fragmented_slots == a.pool_slots,
            "free {} + cached {} + private {} + fragmented {} != pool {}",
            a.free_slots,
            a.cached_slots,
            a.private_slots,
            a.fragmented_slots,
            a.pool_slots
        );
        ensure!(
            a.page_size > 1 || a.fragmented_slots == 0,
            "{} slots fragmented with page size 1",
            a.fragmented_slots
        );

        let mut expected = vec![0u32; self.pool_slots()];
        for s in 0..self.pool_slots() as u32 {
            expected[s as usize] = u32::from(self.cache.is_slot_owned(s));
        }
        let mut locks: HashMap<NodeId, u32> = HashMap::new();
        for (k, seq) in seqs.iter().enumerate() {
            self.check_seq(seq)
                .map_err(|e| format!("sequence {k}: {e}"))?;
            let held = seq.slots.iter().zip(&seq.held).filter(|&(_, &h)| h);
            let owned = held
                .map(|(&s, _)| s)
                .chain(seq.tail())
                .chain(seq.pins.iter().copied());
            for s in owned {
                expected[s as usize] += 1;
            }
            for &node in &seq.locks {
                *locks.entry(node).or_default() += 1;
            }
        }
        for (s, &e) in expected.iter().enumerate() {
            let h = self.pages.holders(s as u32);
            ensure!(h == e, "slot {s}: {h} owners recorded, {e} found");
        }
        let mut pinned = vec![0u32; self.pool_slots()];
        for s in seqs.iter().flat_map(|seq| &seq.pins) {
            pinned[*s as usize] += 1;
        }
        for (k, seq) in seqs.iter().enumerate() {
            self.check_writable(seq, &pinned)
                .map_err(|e| format!("sequence {k}: {e}"))?;
        }
        for (&node, &n) in &locks {
            let held = self.cache.lock_count(node).map_err(|e| e.to_string())?;
            ensure!(held == n, "node {node:?}: {held} locks, {n} sequences");
        }
        let total: u64 = locks.values().map(|&n| u64::from(n)).sum();
        let in_tree = self.cache.direct_lock_total();
        ensure!(
            total == in_tree,
            "{in_tree} locks in the tree, {total} held by sequences"
        );
        Ok(())
    }

    /// What `seq` may still write or drop is nobody else's: positions
    /// `floor..` are shared only with pins of pending copies (`pinned[s]`
    /// counts all sequences' pins of slot `s`), never with the tree; its
    /// tail, written next, has no other owner at all.
    fn check_writable(&self, seq: &SeqKv, pinned: &[u32]) -> Result<(), String> {
        for (i, &s) in seq.slots.iter().enumerate().skip(seq.floor) {
            ensure!(
                !self.cache.is_slot_owned(s),
                "position {i} past the floor in slot {s}, owned by the cache"
            );
            let (h, pins) = (self.pages.holders(s), pinned[s as usize]);
            ensure!(
                h == 1 + pins,
                "position {i} past the floor in slot {s}: {h} owners, {pins} of them pins"
            );
        }
        for s in seq.tail() {
            let h = self.pages.holders(s);
            ensure!(h == 1, "tail slot {s}, written next, has {h} owners");
        }
        Ok(())
    }

    /// One sequence on its own: page consistency, no slot twice, and every
    /// slot it reads without holding protected by one of its locks.
    fn check_seq(&self, seq: &SeqKv) -> Result<(), String> {
        ensure!(seq.owner == self.id, "issued by another manager");
        ensure!(seq.slots.len() == seq.held.len(), "slots and held differ");
        ensure!(!seq.released, "released but still listed");
        ensure!(
            seq.cached_len <= seq.floor && seq.floor <= seq.len(),
            "cached_len {} > floor {} or floor > len {}",
            seq.cached_len,
            seq.floor,
            seq.len()
        );
        let p = self.page_size() as u32;
        let mut seen = std::collections::HashSet::new();
        for (i, &s) in seq.slots.iter().enumerate() {
            ensure!(
                (s as usize) < self.pool_slots(),
                "slot {s} outside the pool"
            );
            ensure!(
                s % p == i as u32 % p,
                "position {i} in slot {s}: not page-consistent"
            );
            if !(i as u32).is_multiple_of(p) {
                ensure!(
                    seq.slots[i - 1] + 1 == s,
                    "page of position {i} spans two physical pages"
                );
            }
            ensure!(seen.insert(s), "slot {s} read at two positions");
        }
        for s in seq.tail().chain(seq.pins.iter().copied()) {
            ensure!(seen.insert(s), "slot {s} held twice");
        }
        for i in seq.floor.min(seq.len())..seq.len() {
            ensure!(seq.held[i], "position {i} past the floor not held");
        }
        let paths: Vec<Vec<u32>> = seq
            .locks
            .iter()
            .map(|&n| self.cache.node_path_slots(n).ok_or("stale lock"))
            .collect::<Result<_, _>>()?;
        for (i, (&s, &h)) in seq.slots.iter().zip(&seq.held).enumerate() {
            ensure!(
                h || paths.iter().any(|path| path.get(i) == Some(&s)),
                "position {i} reads slot {s}, on none of its locked paths"
            );
        }
        for c in &seq.copies {
            ensure!(
                seq.pins.contains(&c.src),
                "copy source {} not pinned",
                c.src
            );
            let dst = seq.slots.iter().position(|&s| s == c.dst);
            ensure!(
                dst.is_some_and(|i| seq.held[i]),
                "copy target {} not a held position",
                c.dst
            );
        }
        Ok(())
    }
}
