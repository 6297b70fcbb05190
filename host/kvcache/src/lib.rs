//! The shared radix-tree KV cache: token-granular prefix sharing, reference
//! counts, LRU eviction.
//!
//! The engine's KV pool has `num_slots` token slots (page size 1: one slot
//! holds one token's K/V for every layer). [`SlotAllocator`] hands slots
//! out; [`RadixCache`] keeps finished prefixes so later requests can reuse
//! their K/V, keyed by token ids and partitioned by [`Namespace`].
//!
//! Typical request lifecycle:
//! 1. `match_prefix(ns, prompt)`, then `lock(m.node)`;
//! 2. allocate slots for the uncached rest (on failure, `evict` and give
//!    the returned slots back to the allocator, then retry);
//! 3. when done, `insert(ns, tokens, slots)`, free `duplicates`, and
//!    `unlock(m.node)` (or lock the inserted node to keep decoding on it).
//!
//! This crate is a pure data structure: it never touches the engine.

mod allocator;
mod arena;
mod error;
mod lru;
mod mount;
mod namespace;
mod node;
mod radix;
mod stats;

pub use allocator::SlotAllocator;
pub use arena::NodeId;
pub use error::{AllocError, CacheError};
pub use namespace::Namespace;
pub use radix::{InsertOutcome, InvariantViolation, PrefixMatch, RadixCache};
pub use stats::CacheStats;
