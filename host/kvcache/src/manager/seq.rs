//! One sequence's view of the pool.
//!
//! Invariant: `slots[i]` holds the K/V of position `i` and is
//! page-consistent (`slots[i] % P == i % P`, and positions of one page
//! `i / P` lie in one physical page); `held[i]` says whether this sequence
//! is one of the slot's owners, otherwise the slot is the tree's and some
//! lock in `locks` protects it. When `len % P != 0`, the rest of the last
//! page (the tail) is held too, reserved for the next positions. `pins` are
//! held copy sources, kept alive until their copies have been taken.
//! Positions `floor..` are held by this sequence and written by it alone,
//! so they are the only ones `truncate` may drop; a fork's pending copy may
//! pin some of them, to read them once, and `truncate` keeps those until it
//! has. The tail, which `allocate` hands out to be written next, has no
//! other owner at all.

use crate::arena::NodeId;
use crate::namespace::Namespace;

/// An instruction for the engine: copy the K/V of every layer from slot
/// `src` to slot `dst` (copy on write of a page the sequence cannot share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotCopy {
    /// Slot to read; kept allocated until the copy has been taken.
    pub src: u32,
    /// Slot to write; private to the sequence the copy belongs to.
    pub dst: u32,
}

/// The KV of one live sequence, issued by
/// [`KvManager::admit`](super::KvManager::admit) or
/// [`fork`](super::KvManager::fork).
///
/// Not `Clone`: it stands for slots and locks that must be given back
/// exactly once, with [`KvManager::release`](super::KvManager::release).
/// Dropping it otherwise leaks them (and asserts in debug builds).
#[must_use = "a SeqKv holds pool slots: give it back with KvManager::release"]
#[derive(Debug)]
pub struct SeqKv {
    pub(super) owner: u64,
    pub(super) ns: Namespace,
    pub(super) page_size: u32,
    pub(super) slots: Vec<u32>,
    pub(super) held: Vec<bool>,
    pub(super) locks: Vec<NodeId>,
    pub(super) pins: Vec<u32>,
    pub(super) copies: Vec<SlotCopy>,
    pub(super) cached_len: usize,
    pub(super) floor: usize,
    pub(super) released: bool,
}

impl SeqKv {
    pub(super) fn new(owner: u64, ns: Namespace, page_size: u32) -> Self {
        SeqKv {
            owner,
            ns,
            page_size,
            slots: Vec::new(),
            held: Vec::new(),
            locks: Vec::new(),
            pins: Vec::new(),
            copies: Vec::new(),
            cached_len: 0,
            floor: 0,
            released: false,
        }
    }

    /// The namespace the sequence matches and caches in.
    pub fn namespace(&self) -> Namespace {
        self.ns
    }

    /// Positions with slots assigned.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no position has a slot yet.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Slots of positions `0..len()`: what the engine reads as history.
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// Positions found in the cache at admission (for a fork: the forked
    /// length), i.e. not computed by this sequence.
    pub fn cached_len(&self) -> usize {
        self.cached_len
    }

    /// Copy-on-write copies still to be executed, in order, before the
    /// sequence's next forward pass; the caller hands them to the engine
    /// with that pass. Their sources stay allocated until the next manager
    /// call on this sequence.
    pub fn take_copies(&mut self) -> Vec<SlotCopy> {
        std::mem::take(&mut self.copies)
    }

    /// Whether copies are waiting to be taken.
    pub fn has_pending_copies(&self) -> bool {
        !self.copies.is_empty()
    }

    /// Slots this sequence holds (its own positions, its tail, pinned copy
    /// sources), some possibly shared with a fork or the tree.
    pub fn private_slots(&self) -> usize {
        self.held.iter().filter(|&&h| h).count() + self.tail().len() + self.pins.len()
    }

    /// Slots reserved for positions `len()..` in the last page.
    pub(super) fn tail(&self) -> std::ops::Range<u32> {
        let p = self.page_size;
        match self.slots.last() {
            Some(&last) if !self.slots.len().is_multiple_of(p as usize) => {
                last + 1..(last / p + 1) * p
            }
            _ => 0..0,
        }
    }
}

impl Drop for SeqKv {
    fn drop(&mut self) {
        // A panic unwinding through the owner would otherwise abort here.
        debug_assert!(
            self.released || std::thread::panicking(),
            "SeqKv dropped without KvManager::release: {} slots leaked",
            self.private_slots()
        );
    }
}
