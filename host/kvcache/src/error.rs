//! Error types. Every misuse of the public API that could come from a buggy
//! caller is reported here instead of panicking or corrupting state: each
//! fallible operation validates its whole input before it mutates anything.

use crate::arena::NodeId;

/// Errors from [`SlotAllocator`](crate::SlotAllocator)'s checked API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The slot id is not below the pool size.
    #[error("slot {slot} is outside the pool of {num_slots} slots")]
    UnknownSlot {
        /// The offending slot.
        slot: u32,
        /// Size of the pool.
        num_slots: u32,
    },
    /// The slot is already free (or appears twice in one `free` call).
    #[error("slot {0} freed twice")]
    DoubleFree(u32),
}

/// Errors from [`RadixCache`](crate::RadixCache).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// `tokens` and `slots` must pair up one to one.
    #[error("{tokens} tokens but {slots} slots")]
    LengthMismatch {
        /// Number of tokens given.
        tokens: usize,
        /// Number of slots given.
        slots: usize,
    },
    /// The handle names a node that has since been evicted, or comes from
    /// another cache.
    #[error("node handle {0:?} is stale (evicted) or foreign")]
    StaleNode(NodeId),
    /// `unlock` without a matching `lock` on this very node.
    #[error("node {0:?} is not locked")]
    NotLocked(NodeId),
    /// A lock counter would overflow.
    #[error("too many locks")]
    LockOverflow,
    /// The slot id is not below the pool size the cache was built for.
    #[error("slot {slot} is outside the pool of {pool_size} slots")]
    SlotOutOfRange {
        /// The offending slot.
        slot: u32,
        /// Pool size given to [`RadixCache::new`](crate::RadixCache::new).
        pool_size: u32,
    },
    /// The same slot appears twice in one insert.
    #[error("slot {0} appears twice in the input")]
    DuplicateSlot(u32),
    /// A slot the caller wants the tree to take is already owned by a node;
    /// accepting it would give one slot two owners.
    #[error("slot {0} is already owned by the cache")]
    SlotOwned(u32),
}
