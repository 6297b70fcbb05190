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
//! ```
//! use arbor_kvcache::{Namespace, RadixCache, SlotAllocator};
//!
//! let (mut pool, mut cache) = (SlotAllocator::new(16), RadixCache::new(16));
//! let tenant = Namespace::tenant(7);
//! let prompt = [1, 2, 3, 4];
//!
//! let m = cache.match_prefix(tenant, &prompt);
//! cache.lock(m.node)?;
//! let mut slots = m.slots.clone();
//! let need = prompt.len() - m.matched_len;
//! let fresh = match pool.alloc(need) {
//!     Some(s) => s,
//!     None => {
//!         pool.free(&cache.evict(need - pool.num_free()));
//!         pool.alloc(need).expect("pool too small")
//!     }
//! };
//! slots.extend(fresh);
//! // ... prefill/decode writes K/V into `slots` ...
//! let out = cache.insert(tenant, &prompt, &slots)?;
//! pool.free(&out.duplicates);
//! cache.unlock(m.node)?;
//!
//! assert_eq!(cache.match_prefix(tenant, &prompt).slots, out.slots);
//! assert_eq!(cache.match_prefix(Namespace::tenant(8), &prompt).matched_len, 0);
//! cache.check_invariants(16)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
