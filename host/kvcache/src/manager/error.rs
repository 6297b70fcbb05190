//! Errors of the KV manager.

/// Why [`KvManager::new`](super::KvManager::new) rejected a pool layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvConfigError {
    /// A page must hold at least one token.
    #[error("KV page size must be at least 1")]
    ZeroPageSize,
    /// The pool must hold at least one page.
    #[error("KV pool has no slots")]
    EmptyPool,
    /// Pages tile the pool exactly: a trailing partial page could not be
    /// addressed by a block table.
    #[error("KV pool of {pool_slots} slots is not a multiple of the page size {page_size}")]
    NotPageMultiple {
        /// Slots in the pool.
        pool_slots: u32,
        /// Slots per page.
        page_size: u32,
    },
}

/// Errors of [`KvManager`](super::KvManager) operations; each leaves the
/// manager and the sequence exactly as they were.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// Not enough whole pages, even after evicting every evictable cache
    /// entry. Both counts are in slots of whole pages.
    #[error("KV pool exhausted: {needed} slots needed, {available} obtainable")]
    OutOfSlots {
        /// Slots (whole pages) the operation needed from free pages.
        needed: usize,
        /// Slots in pages that are free or could be freed by eviction.
        available: usize,
    },
    /// [`fork`](super::KvManager::fork) of a parent whose own copy-on-write
    /// copies are still to be executed.
    #[error("cannot fork a sequence whose pending KV copies have not run")]
    ParentCopiesPending,
    /// [`fork`](super::KvManager::fork) of more positions than the parent has.
    #[error("cannot fork {len} positions of a sequence of {parent_len}")]
    ForkTooLong {
        /// Positions asked for.
        len: usize,
        /// Positions the parent has.
        parent_len: usize,
    },
    /// A lock counter of the cache would overflow.
    #[error("too many locks on one cache path")]
    TooManyLocks,
}
